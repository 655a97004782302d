package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"time"
)

// instreamChunk is the chunk size of popload's INSTREAM client, the same
// as popgate's clamav filter uses.
const instreamChunk = 64 << 10

// instream scans body with clamd's INSTREAM command at addr and returns
// clamd's reply, such as "stream: OK".
func instream(addr string, body []byte, timeout time.Duration) (string, error) {
	if err := checkLoopback(addr); err != nil {
		return "", err
	}
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", fmt.Errorf("connect to clamd: %w", err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(timeout))
	if _, err := nc.Write([]byte("zINSTREAM\x00")); err != nil {
		return "", fmt.Errorf("INSTREAM: %w", err)
	}
	var hdr [4]byte
	for off := 0; off < len(body); off += instreamChunk {
		chunk := body[off:min(off+instreamChunk, len(body))]
		binary.BigEndian.PutUint32(hdr[:], uint32(len(chunk)))
		bufs := net.Buffers{hdr[:], chunk}
		if _, err := bufs.WriteTo(nc); err != nil {
			return "", fmt.Errorf("INSTREAM chunk at %d: %w", off, err)
		}
	}
	if _, err := nc.Write([]byte{0, 0, 0, 0}); err != nil {
		return "", fmt.Errorf("INSTREAM end: %w", err)
	}
	reply, err := bufio.NewReader(nc).ReadBytes(0)
	if err != nil {
		return "", fmt.Errorf("INSTREAM reply: %w", err)
	}
	return strings.TrimSpace(string(bytes.TrimRight(reply, "\x00"))), nil
}
