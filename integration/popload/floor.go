package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // the -pprof listener of floor-server
	"net/url"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// runFloorServer serves the least a Go POP3 server can hold per idle
// session: one goroutine per connection, the net.Conn (and, with -cert,
// the crypto/tls.Conn after its handshake), a 64-octet read buffer, no
// bufio. It greets with +OK and answers every line with -ERR, which is
// enough for popload idle and tls-idle, so popgate's memory per idle
// session can be set against this floor on the same machine, with the
// same Go and the same certificate. It serves until killed.
func runFloorServer(args []string) error {
	fs := flag.NewFlagSet("floor-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:24190", "loopback `IP:PORT` to listen on")
	certFile := fs.String("cert", "", "PEM certificate `file`: serve implicit TLS (plaintext without it)")
	keyFile := fs.String("key", "", "PEM key `file` of -cert")
	pprofAddr := fs.String("pprof", "", "loopback `IP:PORT` to serve net/http/pprof on (heap profiles)")
	rate := fs.Int("memprofilerate", 0, "runtime.MemProfileRate (1 records every allocation; 0 keeps Go's default)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: popload floor-server [flags]\n\nA minimal Go POP3 greeter, the memory floor for idle sessions.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *rate > 0 {
		runtime.MemProfileRate = *rate
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}
	var conf *tls.Config
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("loading -cert and -key: %w", err)
		}
		conf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if *pprofAddr != "" {
		if err := checkLoopback(*pprofAddr); err != nil {
			return err
		}
		go func() {
			srv := &http.Server{Addr: *pprofAddr, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(os.Stderr, "floor-server: pprof: %v\n", srv.ListenAndServe())
		}()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var open atomic.Int64
	go reportMemory(&open, conf != nil)
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		open.Add(1)
		go func() {
			defer open.Add(-1)
			floorSession(nc, conf)
		}()
	}
}

// floorSession greets and answers -ERR to every line until the client
// goes away; an idle session blocks in Read with nothing but its buffer.
func floorSession(nc net.Conn, conf *tls.Config) {
	defer nc.Close()
	var c net.Conn = nc
	if conf != nil {
		tc := tls.Server(nc, conf)
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		nc.SetDeadline(time.Time{})
		c = tc
	}
	if _, err := io.WriteString(c, "+OK floor\r\n"); err != nil {
		return
	}
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		for k := bytes.Count(buf[:n], []byte{'\n'}); k > 0; k-- {
			if _, err := io.WriteString(c, "-ERR floor\r\n"); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reportMemory prints the Go runtime's memory figures to stderr whenever
// the number of open sessions has changed and then held for a second.
func reportMemory(open *atomic.Int64, useTLS bool) {
	last, printed := int64(-1), int64(-1)
	for range time.Tick(time.Second) {
		n := open.Load()
		if n != last {
			last = n
			continue
		}
		if n == printed {
			continue
		}
		printed = n
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(os.Stderr, "floor-server: tls=%t sessions=%d heap_inuse=%d stack_inuse=%d sys=%d goroutines=%d\n",
			useTLS, n, m.HeapInuse, m.StackInuse, m.Sys, runtime.NumGoroutine())
	}
}

// checkLoopbackURL accepts only http URLs whose host is a literal loopback
// address and port.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("URL %q: want http://IP:PORT/PATH", raw)
	}
	return checkLoopback(u.Host)
}

// fetchTo saves the body of a GET of raw (a loopback URL) to path.
func fetchTo(raw, path string, timeout time.Duration) error {
	cl := &http.Client{Timeout: timeout}
	resp, err := cl.Get(raw)
	if err != nil {
		return fmt.Errorf("GET %s: %w", raw, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", raw, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
