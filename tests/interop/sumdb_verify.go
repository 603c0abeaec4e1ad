// Checks hashforum's checkpoints, receipts and proofs with Go's stock implementations,
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, unmodified (Debian's
// golang-golang-x-mod-dev). Run by tests/it/interop.rs; usable by hand:
//
//	go run sumdb_verify.go checkpoint  VKEY NOTE
//	go run sumdb_verify.go receipt     VKEY TLOG-PROOF ENTRY
//	go run sumdb_verify.go consistency VKEY OLD-NOTE NEW-NOTE PROOF
//
// PROOF is base64 hashes, one per line (`hashforum log proof consistency`). Prints "ok ..." and
// exits 0 when everything verifies; prints the reason and exits 1 when not.
package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return b
}

// checkpoint opens a signed note with the vkey and parses its C2SP tlog-checkpoint body.
func checkpoint(vkey string, msg []byte) (string, int64, tlog.Hash) {
	verifier, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		fail("vkey: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		fail("checkpoint body: %q", n.Text)
	}
	if lines[0] != verifier.Name() {
		fail("origin %q is not the key name %q", lines[0], verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || strconv.FormatInt(size, 10) != lines[1] {
		fail("size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("root %q: %v", lines[2], err)
	}
	return lines[0], size, root
}

func hashes(lines []string) []tlog.Hash {
	var out []tlog.Hash
	for _, l := range lines {
		if l == "" {
			continue
		}
		h, err := tlog.ParseHash(l)
		if err != nil {
			fail("proof hash %q: %v", l, err)
		}
		out = append(out, h)
	}
	return out
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: checkpoint|receipt|consistency VKEY ...")
	}
	vkey := string(read(os.Args[2]))
	switch os.Args[1] {
	case "checkpoint":
		origin, size, root := checkpoint(vkey, read(os.Args[3]))
		fmt.Printf("ok %s %d %s\n", origin, size, root)
	case "receipt":
		// c2sp.org/tlog-proof@v1: header, optional extra, index, proof lines, blank, note.
		proof := read(os.Args[3])
		head, msg, found := bytes.Cut(proof, []byte("\n\n"))
		if !found {
			fail("no blank line in the tlog-proof")
		}
		lines := strings.Split(string(head), "\n")
		if lines[0] != "c2sp.org/tlog-proof@v1" {
			fail("header %q", lines[0])
		}
		lines = lines[1:]
		if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
			lines = lines[1:]
		}
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
			fail("no index line")
		}
		index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
		if err != nil {
			fail("index: %v", err)
		}
		_, size, root := checkpoint(vkey, msg)
		leaf := tlog.RecordHash(read(os.Args[4]))
		if err := tlog.CheckRecord(hashes(lines[1:]), size, root, index, leaf); err != nil {
			fail("inclusion of %d in %d: %v", index, size, err)
		}
		fmt.Printf("ok %d %d %s\n", index, size, base64.StdEncoding.EncodeToString(leaf[:]))
	case "consistency":
		_, oldSize, oldRoot := checkpoint(vkey, read(os.Args[3]))
		_, newSize, newRoot := checkpoint(vkey, read(os.Args[4]))
		proof := hashes(strings.Split(string(read(os.Args[5])), "\n"))
		if err := tlog.CheckTree(proof, newSize, newRoot, oldSize, oldRoot); err != nil {
			fail("consistency %d -> %d: %v", oldSize, newSize, err)
		}
		fmt.Printf("ok %d %d\n", oldSize, newSize)
	default:
		fail("unknown command %q", os.Args[1])
	}
}
