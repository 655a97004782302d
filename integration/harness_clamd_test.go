//go:build integration

package integration

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// clamdScan sends data to clamd with INSTREAM (network "tcp" with
// CLAMD_TCP, or "unix" with CLAMD_UNIX) and returns clamd's reply without
// its NUL, e.g. "stream: OK" or "stream: NAME FOUND". It is the test's own
// independent client, not popgate's.
func clamdScan(network, addr string, data io.Reader) (string, error) {
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("dial clamd: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	w := bufio.NewWriterSize(conn, 64<<10)
	if _, err := w.WriteString("zINSTREAM\x00"); err != nil {
		return "", fmt.Errorf("clamd INSTREAM: %w", err)
	}
	buf := make([]byte, 32<<10)
	var hdr [4]byte
	for {
		n, rerr := data.Read(buf)
		if n > 0 {
			binary.BigEndian.PutUint32(hdr[:], uint32(n))
			w.Write(hdr[:])
			if _, err := w.Write(buf[:n]); err != nil {
				// clamd may have closed after a size limit: its reply says why.
				return clamdReply(conn, fmt.Errorf("clamd INSTREAM chunk: %w", err))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", fmt.Errorf("read scan data: %w", rerr)
		}
	}
	w.Write([]byte{0, 0, 0, 0})
	if err := w.Flush(); err != nil {
		return clamdReply(conn, fmt.Errorf("clamd INSTREAM end: %w", err))
	}
	return clamdReply(conn, nil)
}

// clamdPing sends PING and returns the reply ("PONG" when healthy).
func clamdPing(network, addr string) (string, error) {
	conn, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("dial clamd: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return "", fmt.Errorf("clamd PING: %w", err)
	}
	return clamdReply(conn, nil)
}

// clamdReply reads one NUL-terminated reply. writeErr, the error of an
// earlier write, is returned only if no reply can be read: a reply (such as
// "INSTREAM size limit exceeded. ERROR") explains a failed write better.
func clamdReply(conn net.Conn, writeErr error) (string, error) {
	reply, err := bufio.NewReader(conn).ReadString(0)
	if err != nil {
		if writeErr != nil {
			return "", writeErr
		}
		return "", fmt.Errorf("read clamd reply: %w", err)
	}
	return strings.TrimSuffix(reply, "\x00"), nil
}
