package main

import (
	"bufio"
	"log"
	"net"
	"strings"
	"time"
)

// servePOP3 runs a trivial POP3 server on addr for the benchmark: it
// greets, takes any USER and PASS, answers STAT, NOOP and QUIT, and
// nothing else. Behind it, logins/s measure the proxy and the auth
// service, not a real server's password check.
func servePOP3(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("authsvc: pop3: %v", err)
	}
	log.Printf("authsvc: trivial POP3 server on %s", addr)
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Printf("authsvc: pop3 accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go pop3Session(c)
	}
}

func pop3Session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	w.WriteString("+OK trivial POP3 ready\r\n")
	w.Flush()
	for {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "USER":
			w.WriteString("+OK\r\n")
		case "PASS":
			w.WriteString("+OK logged in\r\n")
		case "STAT":
			w.WriteString("+OK 0 0\r\n")
		case "NOOP":
			w.WriteString("+OK\r\n")
		case "QUIT":
			w.WriteString("+OK bye\r\n")
			w.Flush()
			return
		default:
			w.WriteString("-ERR not here\r\n")
		}
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}
