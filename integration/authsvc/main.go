// Command authsvc is a small mail auth service written to nginx's
// documented auth_http protocol (ngx_mail_auth_http_module), for popgate's
// integration tests and benchmark. It is what a site's directory service
// looks like to nginx and to popgate alike.
//
// Usage: authsvc -listen 127.0.0.1:14120 -users FILE [-key K] [-verify=false]
// [-slow-user NAME -slow DURATION] [-wait N] [-pop3 ADDR]
//
// FILE has one user a line, fields separated by blanks:
//
//	NAME PASSWORD SERVER PORT [BACKEND_USER [BACKEND_PASSWORD]]
//
// NAME may be a glob (load*). SERVER is an IP address, or (a popgate
// extension) the name of a backend block, then PORT is "-". The service
// checks Auth-Pass by Auth-Method: plain compares it, URL-unescaped, with
// PASSWORD; apop compares it with md5(Auth-Salt PASSWORD); cram-md5 with
// hmac-md5(PASSWORD, Auth-Salt). With -verify=false it accepts any plain
// password (a routing-only service). An OK answer carries Auth-Server,
// Auth-Port (unless "-"), Auth-User when BACKEND_USER is given and not
// "-", and Auth-Pass (BACKEND_PASSWORD, else PASSWORD). A refusal is
// "Auth-Status: Invalid login or password" with Auth-Wait N when -wait is
// set. With -key, a request without "X-Auth-Key: K" gets an answer with no
// Auth-Status (a service error to its client). With -pop3 it also serves a
// trivial POP3 server that takes any login (pop3.go), the benchmark's
// backend when the proxies, not Dovecot, are to be measured.
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type user struct {
	pattern, password, server, port, backendUser, backendPass string
}

func main() {
	listen := flag.String("listen", "127.0.0.1:14120", "address to serve on")
	usersFile := flag.String("users", "", "users file (required)")
	key := flag.String("key", "", "required X-Auth-Key value (empty: none)")
	verify := flag.Bool("verify", true, "check passwords (false: route only)")
	slowUser := flag.String("slow-user", "", "a user whose answers are delayed by -slow")
	slow := flag.Duration("slow", 10*time.Second, "delay of -slow-user's answers")
	wait := flag.Int("wait", 0, "Auth-Wait seconds sent with refusals (0: none)")
	pop3 := flag.String("pop3", "", "also serve a trivial POP3 server on this address (benchmark backend)")
	flag.Parse()
	if *pop3 != "" {
		go servePOP3(*pop3)
	}
	users, err := readUsers(*usersFile)
	if err != nil {
		log.Fatalf("authsvc: %v", err)
	}
	var requests atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if *key != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Auth-Key")), []byte(*key)) != 1 {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		name, err := url.PathUnescape(r.Header.Get("Auth-User"))
		if err != nil {
			refuse(w, *wait)
			return
		}
		if name == *slowUser {
			time.Sleep(*slow)
		}
		u := lookup(users, name)
		if u == nil || !check(r.Header, u, *verify) {
			refuse(w, *wait)
			return
		}
		hd := w.Header()
		hd.Set("Auth-Status", "OK")
		hd.Set("Auth-Server", u.server)
		if u.port != "-" {
			hd.Set("Auth-Port", u.port)
		}
		if u.backendUser != "" && u.backendUser != "-" {
			hd.Set("Auth-User", u.backendUser)
		}
		pass := u.password
		if u.backendPass != "" {
			pass = u.backendPass
		}
		if *verify || r.Header.Get("Auth-Method") != "plain" {
			hd.Set("Auth-Pass", pass)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", h)
	mux.HandleFunc("/requests", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, requests.Load()) })
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("authsvc: serving %s with %d users", *listen, len(users))
	log.Fatal(srv.ListenAndServe())
}

func refuse(w http.ResponseWriter, wait int) {
	w.Header().Set("Auth-Status", "Invalid login or password")
	if wait > 0 {
		w.Header().Set("Auth-Wait", strconv.Itoa(wait))
	}
}

// check verifies Auth-Pass for Auth-Method.
func check(h http.Header, u *user, verify bool) bool {
	pass, err := url.PathUnescape(h.Get("Auth-Pass"))
	if err != nil {
		return false
	}
	salt := h.Get("Auth-Salt")
	var want string
	switch h.Get("Auth-Method") {
	case "plain":
		if !verify {
			return true
		}
		want = u.password
	case "apop":
		sum := md5.Sum([]byte(salt + u.password))
		want = hex.EncodeToString(sum[:])
	case "cram-md5":
		m := hmac.New(md5.New, []byte(u.password))
		m.Write([]byte(salt))
		want = hex.EncodeToString(m.Sum(nil))
	default:
		return false
	}
	return subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1
}

func lookup(users []user, name string) *user {
	for i := range users {
		if ok, _ := path.Match(users[i].pattern, name); ok {
			return &users[i]
		}
	}
	return nil
}

func readUsers(file string) ([]user, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []user
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) < 4 || len(fs) > 6 {
			return nil, fmt.Errorf("%s:%d: want NAME PASSWORD SERVER PORT [BACKEND_USER [BACKEND_PASSWORD]]", file, n)
		}
		fs = append(fs, "", "")
		out = append(out, user{fs[0], fs[1], fs[2], fs[3], fs[4], fs[5]})
	}
	return out, sc.Err()
}
