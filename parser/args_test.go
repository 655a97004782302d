package parser

import (
	"strings"
	"testing"
)

func TestMessageNumber(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int
		ok bool
	}{
		{"1", 1, true}, {"01", 1, true}, {"9999999999", 9999999999, true},
		{"0", 0, false}, {"", 0, false}, {"-1", 0, false}, {"+1", 0, false},
		{"1 ", 0, false}, {"12345678901", 0, false}, {"1a", 0, false}, {"٣", 0, false},
	} {
		if n, ok := MessageNumber(tc.in); n != tc.n || ok != tc.ok {
			t.Errorf("MessageNumber(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.ok)
		}
	}
	if n, ok := Count("0"); n != 0 || !ok {
		t.Errorf("Count(\"0\") = %d, %v", n, ok)
	}
}

func TestDecodeSASL(t *testing.T) {
	if b, err := DecodeSASL("="); err != nil || b == nil || len(b) != 0 {
		t.Errorf(`DecodeSASL("=") = %q, %v; want empty, non-nil`, b, err)
	}
	if b, err := DecodeSASL("AGFsaWNlAHB3"); err != nil || string(b) != "\x00alice\x00pw" {
		t.Errorf("DecodeSASL = %q, %v", b, err)
	}
	if _, err := DecodeSASL("not base64!"); err == nil {
		t.Error("DecodeSASL accepted non-base64")
	}
	if EncodeSASL(nil) != "=" || EncodeSASL([]byte("x")) != "eA==" {
		t.Error("EncodeSASL")
	}
}

func TestReadCapa(t *testing.T) {
	lines, err := ReadCapa(strings.NewReader("TOP\r\nSASL PLAIN LOGIN\r\nuser\r\n"))
	if err != nil || strings.Join(lines, "|") != "TOP|SASL PLAIN LOGIN|user" {
		t.Fatalf("ReadCapa = %q, %v", lines, err)
	}
	if CapaTag(lines[1]) != "SASL" || CapaTag(lines[2]) != "USER" {
		t.Error("CapaTag")
	}
	if _, err := ReadCapa(strings.NewReader(strings.Repeat("X-LONG-CAPABILITY\r\n", 2000))); err == nil {
		t.Error("ReadCapa accepted a list over MaxCapaOctets")
	}
}
