package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkmail:", err)
		os.Exit(1)
	}
}

// run dispatches one subcommand.
func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: mkmail passwd|templates|seed|ndb [flags]")
	}
	fs := flag.NewFlagSet("mkmail "+args[0], flag.ContinueOnError)
	instance := fs.String("instance", "a", "Dovecot instance: a or b")
	out := fs.String("out", "", "output file (passwd, ndb)")
	root := fs.String("root", "", "mail root: one home directory per user (seed)")
	templates := fs.String("templates", "", "template directory (templates, seed)")
	uid := fs.Int("uid", os.Getuid(), "owner uid of mailbox files")
	gid := fs.Int("gid", os.Getgid(), "owner gid of mailbox files")
	var confs stringList
	fs.Var(&confs, "dovecot-conf", "config of a running Dovecot whose sessions of the users are kicked before seeding (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	o := owner{uid: *uid, gid: *gid}
	switch args[0] {
	case "passwd":
		us, err := instanceUsers(*instance)
		if err != nil {
			return err
		}
		if *out == "" {
			return fmt.Errorf("passwd: -out is required")
		}
		return writeFileAtomic(*out, passwdFile(us), 0o644)
	case "ndb":
		if *out == "" {
			return fmt.Errorf("ndb: -out is required")
		}
		return writeNDB(*out)
	case "templates":
		us, err := instanceUsers(*instance)
		if err != nil {
			return err
		}
		if *templates == "" {
			return fmt.Errorf("templates: -templates is required")
		}
		for _, name := range templateNames(us) {
			if err := ensureTemplate(*templates, name, o, true); err != nil {
				return err
			}
		}
		return nil
	case "seed":
		return seed(*instance, *root, *templates, fs.Args(), confs, o)
	default:
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}

// seed reseeds the named users of an instance (all when names is empty),
// generating any missing template first. Sessions of those users on the
// Dovecot instances configured by confs are ended first.
func seed(instance, root, templates string, names, confs []string, o owner) error {
	if root == "" || templates == "" {
		return fmt.Errorf("seed: -root and -templates are required")
	}
	us, err := lookupUsers(instance, names)
	if err != nil {
		return err
	}
	for _, name := range templateNames(us) {
		if err := ensureTemplate(templates, name, o, false); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("create mail root: %w", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("mail root: %w", err)
	}
	if len(confs) > 0 {
		names := make([]string, len(us))
		for i, u := range us {
			names[i] = u.Name
		}
		if err := kickUsers(confs, names); err != nil {
			return err
		}
	}
	for _, u := range us {
		if err := seedUser(root, templates, u, o); err != nil {
			return err
		}
	}
	return nil
}
