package lio

import (
	"strings"
	"testing"
)

// FuzzParseACLInfo: the session parser never panics, and what it reports as
// a session has an initiator.
func FuzzParseACLInfo(f *testing.F) {
	f.Add(loggedIn)
	f.Add("No active iSCSI Session for Initiator Endpoint: " + dom0A + "\n")
	f.Add("SessionType:")
	f.Add("Address")
	f.Fuzz(func(t *testing.T, info string) {
		s, ok := parseACLInfo(info)
		if ok && s.Initiator == "" {
			t.Errorf("session without initiator from %q", info)
		}
	})
}

// FuzzParseDeviceInfo: the backstore info parser never panics and never
// reads a file name with spaces in it.
func FuzzParseDeviceInfo(f *testing.F) {
	f.Add("Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 0        File: /dev/drbd0  Size: 0  Mode: O_DSYNC Async: 0\n")
	f.Add("File:")
	f.Add("Size: -1 Size: 99999999999999999999999")
	f.Fuzz(func(t *testing.T, info string) {
		d := parseDeviceInfo(info)
		if strings.ContainsAny(d.file, " \t\n") {
			t.Errorf("file %q has white space", d.file)
		}
	})
}
