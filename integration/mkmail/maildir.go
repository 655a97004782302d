package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// owner is the uid and gid that own mailbox files: Dovecot refuses to
// deliver mail as root, so mailboxes belong to a dedicated mail user.
type owner struct{ uid, gid int }

// chown sets the owner of path (not following symlinks).
func (o owner) chown(path string) error {
	if err := os.Lchown(path, o.uid, o.gid); err != nil {
		return fmt.Errorf("chown %s: %w", path, err)
	}
	return nil
}

// firstTime is the Maildir timestamp of a template's first message; message
// i is named firstTime+i so Dovecot numbers messages in template order.
const firstTime = 1700000000

// messageFileName is the Maildir file name of message i (0-based) in cur/.
func messageFileName(i int) string {
	return fmt.Sprintf("%d.M%dP1.popgate:2,", firstTime+i, i+1)
}

// doneMarker marks a template directory as complete.
const doneMarker = ".complete"

// ensureTemplate generates template name under dir unless it is complete
// already (or fresh asks for regeneration). It builds into a temporary
// directory and renames it into place, so a template is never seen half
// written.
func ensureTemplate(dir, name string, o owner, fresh bool) error {
	final := filepath.Join(dir, name)
	if !fresh {
		if _, err := os.Stat(filepath.Join(final, doneMarker)); err == nil {
			return nil
		}
	}
	msgs, err := templateMessages(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create template dir: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, "."+name+".tmp")
	if err != nil {
		return fmt.Errorf("create template %s: %w", name, err)
	}
	defer os.RemoveAll(tmp) //nolint:errcheck // best effort after a failure; empty after success
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("chmod template %s: %w", name, err)
	}
	for i, m := range msgs {
		if err := writeMessage(filepath.Join(tmp, messageFileName(i)), m, o); err != nil {
			return fmt.Errorf("template %s message %d: %w", name, i+1, err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, doneMarker), nil, 0o644); err != nil {
		return fmt.Errorf("mark template %s: %w", name, err)
	}
	if err := removeAside(final); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("install template %s: %w", name, err)
	}
	return nil
}

// writeMessage writes one message file owned by o.
func writeMessage(path string, m message, o owner) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create message: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close message: %w", cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	if err := m.write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return o.chown(path)
}

// removeAside removes path (if it exists) by first renaming it to a hidden
// name, so a Dovecot process still writing index files into the old
// directory cannot make the removal fail or leak into the new one.
func removeAside(path string) error {
	if _, err := os.Lstat(path); os.IsNotExist(err) {
		return nil
	}
	trash := filepath.Join(filepath.Dir(path), fmt.Sprintf(".trash.%s.%d.%d",
		filepath.Base(path), os.Getpid(), time.Now().UnixNano()))
	if err := os.Rename(path, trash); err != nil {
		return fmt.Errorf("move aside %s: %w", path, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove %s: %w", trash, err)
	}
	return nil
}

// seedUser replaces the mailbox of u under root with hard links to the
// files of its template: root/USER/Maildir/{cur,new,tmp}.
func seedUser(root, templates string, u user, o owner) error {
	home := filepath.Join(root, u.Name)
	if err := removeAside(home); err != nil {
		return err
	}
	// Build the new home beside the final one, then rename it into place so
	// Dovecot never sees a half-seeded mailbox.
	tmp, err := os.MkdirTemp(root, "."+u.Name+".seed")
	if err != nil {
		return fmt.Errorf("seed %s: %w", u.Name, err)
	}
	defer os.RemoveAll(tmp) //nolint:errcheck // empty after success
	dirs := []string{tmp, filepath.Join(tmp, "Maildir")}
	for _, sub := range []string{"cur", "new", "tmp"} {
		dirs = append(dirs, filepath.Join(tmp, "Maildir", sub))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("seed %s: %w", u.Name, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("seed %s: %w", u.Name, err)
		}
		if err := o.chown(d); err != nil {
			return err
		}
	}
	src := filepath.Join(templates, u.Template)
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("read template %s: %w", u.Template, err)
	}
	cur := filepath.Join(tmp, "Maildir", "cur")
	for _, e := range entries {
		if e.Name() == doneMarker {
			continue
		}
		if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(cur, e.Name())); err != nil {
			return fmt.Errorf("seed %s: %w", u.Name, err)
		}
	}
	if err := os.Rename(tmp, home); err != nil {
		return fmt.Errorf("install mailbox %s: %w", u.Name, err)
	}
	return nil
}
