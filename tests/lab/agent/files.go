package agent

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// WriteFiles is a guest's fsync workload: it writes files into dir one
// after the other (f0000001, f0000002, ...), each of size bytes of data
// drawn from (salt, number), fsyncs the file and then the directory, and
// only then prints the acknowledgement
//
//	ack SEQ NAME SIZE SHA256 UNIXNANO
//
// (UNIXNANO: the clock when the fsyncs returned). A failed step prints
//
//	err SEQ UNIXNANO WHAT
//
// and the writer goes on with the next file after pause, as an
// application that retries would. It writes until ctx ends.
func WriteFiles(ctx context.Context, dir string, size int, pause time.Duration, salt uint64, out io.Writer) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	buf := make([]byte, size)
	for seq := 1; ctx.Err() == nil; seq++ {
		name := fmt.Sprintf("f%07d", seq)
		fill(buf, salt, seq)
		sum := sha256.Sum256(buf)
		if err := writeSynced(filepath.Join(dir, name), buf, d); err != nil {
			fmt.Fprintf(out, "err %d %d %v\n", seq, time.Now().UnixNano(), err)
		} else {
			fmt.Fprintf(out, "ack %d %s %d %s %d\n", seq, name, size, hex.EncodeToString(sum[:]), time.Now().UnixNano())
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	return nil
}

func writeSynced(path string, data []byte, dir *os.File) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	return nil
}

// fill makes file seq's data: a PCG stream seeded with the salt and the
// number, so no two files and no two runs hold the same bytes.
func fill(buf []byte, salt uint64, seq int) {
	r := rand.New(rand.NewPCG(salt, uint64(seq)))
	for i := 0; i < len(buf); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.Uint64())
		copy(buf[i:], w[:])
	}
}

// SumFiles prints "sum NAME SHA256" for every regular file in dir, in name
// order, then "sums-done COUNT".
func SumFiles(dir string, out io.Writer) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			fmt.Fprintf(out, "sum-err %s %v\n", n, err)
			continue
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(out, "sum %s %s\n", n, hex.EncodeToString(sum[:]))
	}
	fmt.Fprintf(out, "sums-done %d\n", len(names))
	return nil
}
