package iscsi

import (
	"strings"
	"testing"
)

// pairGroup is what an appliance pair exports: the VIP on IPv4 and IPv6,
// one target per LUN mostly, CHAP and mutual CHAP, blockio LVs and a
// fileio image.
func pairGroup() TargetGroup {
	return TargetGroup{
		Portals: []string{"192.168.10.50:3260", "[2001:db8:10::50]:3260"},
		Targets: []Target{
			{
				IQN:        "iqn.2026-11.lan.example.san:vm01",
				Alias:      "vm01",
				Initiators: []string{"iqn.2026-11.lan.example:xen1", "iqn.2026-11.lan.example:xen2"},
				CHAP:       &CHAP{User: "xen", Secret: "xensecret0001"},
				MutualCHAP: &CHAP{User: "san", Secret: "sanmutual0001"},
				LUNs: []LogicalUnit{{
					Number: 0, Name: "vm01", Path: "/dev/sand/lun-vm01", Type: BlockIO,
					Size: 21474836480, Serial: "8a1b2c3d4e5f6a7b", NAA: NAAFromSerial("8a1b2c3d4e5f6a7b"),
				}},
			},
			{
				IQN:        "iqn.2026-11.lan.example.san:db01",
				Alias:      "db01 (PostgreSQL)",
				Initiators: []string{"iqn.2026-11.lan.example:xen1"},
				CHAP:       &CHAP{User: "xen", Secret: "xensecret0002"},
				LUNs: []LogicalUnit{
					{
						Number: 0, Name: "db01-data", Path: "/dev/sand/lun-db01-data", Type: BlockIO,
						Size: 107374182400, Serial: "0f1e2d3c4b5a6978", NAA: NAAFromSerial("0f1e2d3c4b5a6978"),
					},
					{
						Number: 1, Name: "db01-wal", Path: "/dev/sand/lun-db01-wal", Type: BlockIO,
						Size: 10737418240, Serial: "a0b1c2d3e4f50617", NAA: NAAFromSerial("a0b1c2d3e4f50617"),
					},
				},
			},
			{
				IQN:        "iqn.2026-11.lan.example.san:scratch",
				Initiators: []string{"iqn.2026-11.lan.example:xen2"},
				LUNs: []LogicalUnit{{
					Number: 1, Name: "scratch", Path: "/srv/sand/lun-scratch", Type: FileIO,
					Size: 1073741824, Serial: "5566778899aabbcc", NAA: NAAFromSerial("5566778899aabbcc"),
				}},
			},
		},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(tg *TargetGroup)
		wantErr string // "" means valid
	}{
		{name: "pair group", change: func(tg *TargetGroup) {}},
		{name: "empty group", change: func(tg *TargetGroup) { *tg = TargetGroup{} }},
		{name: "no portals", change: func(tg *TargetGroup) { tg.Portals = nil }},
		{name: "target without LUNs", change: func(tg *TargetGroup) { tg.Targets[2].LUNs = nil }},
		{name: "LUN without serial or name", change: func(tg *TargetGroup) {
			lu := &tg.Targets[2].LUNs[0]
			lu.Serial, lu.NAA, lu.Name, lu.Size = "", "", "", 0
		}},
		{name: "LUN 16383", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Number = 16383 }},
		{name: "unspecified portal", change: func(tg *TargetGroup) { tg.Portals = []string{"0.0.0.0:3260"} }},

		{name: "portal without port", change: func(tg *TargetGroup) { tg.Portals[0] = "192.168.10.50" }, wantErr: `portal "192.168.10.50" is not ip:port`},
		{name: "portal host name", change: func(tg *TargetGroup) { tg.Portals[0] = "san.example.lan:3260" }, wantErr: "not ip:port"},
		{name: "portal port 0", change: func(tg *TargetGroup) { tg.Portals[0] = "192.168.10.50:0" }, wantErr: "port 0"},
		{name: "portal not canonical", change: func(tg *TargetGroup) { tg.Portals[1] = "[2001:DB8:10:0::50]:3260" }, wantErr: "write it as [2001:db8:10::50]:3260"},
		{name: "portal with zone", change: func(tg *TargetGroup) { tg.Portals[1] = "[fe80::1%eth0]:3260" }, wantErr: "zone"},
		{name: "portal twice", change: func(tg *TargetGroup) { tg.Portals[1] = tg.Portals[0] }, wantErr: "portal 192.168.10.50:3260 is listed twice"},
		{name: "bad IQN", change: func(tg *TargetGroup) { tg.Targets[1].IQN = "iqn.2026-11.lan.example.san:DB01" }, wantErr: "upper-case"},
		{name: "IQN twice", change: func(tg *TargetGroup) { tg.Targets[2].IQN = tg.Targets[0].IQN }, wantErr: "target iqn.2026-11.lan.example.san:vm01 is defined twice"},
		{name: "alias with tab", change: func(tg *TargetGroup) { tg.Targets[0].Alias = "vm\t01" }, wantErr: "tab"},
		{name: "alias with blank at end", change: func(tg *TargetGroup) { tg.Targets[0].Alias = "vm01 " }, wantErr: "starts or ends with a blank"},
		{name: "alias too long", change: func(tg *TargetGroup) { tg.Targets[0].Alias = strings.Repeat("a", 256) }, wantErr: "256 bytes long"},
		{name: "alias not UTF-8", change: func(tg *TargetGroup) { tg.Targets[0].Alias = "vm\xff01" }, wantErr: "UTF-8"},
		{name: "LUN number twice", change: func(tg *TargetGroup) { tg.Targets[1].LUNs[1].Number = 0 }, wantErr: "LUN 0 is defined twice"},
		{name: "LUN negative", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Number = -1 }, wantErr: "LUN number -1 is negative"},
		{name: "LUN 16384", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Number = 16384 }, wantErr: "LUN number 16384 is too large"},
		{name: "empty path", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "" }, wantErr: "path is empty"},
		{name: "relative path", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "dev/sand/lun-vm01" }, wantErr: `"dev/sand/lun-vm01" is relative`},
		{name: "unclean path", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "/dev/sand/../sand/lun-vm01" }, wantErr: "write it as /dev/sand/lun-vm01"},
		{name: "trailing slash", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "/dev/sand/lun-vm01/" }, wantErr: "not clean"},
		{name: "path with comma", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "/dev/sand/a,b" }, wantErr: "comma"},
		{name: "path with newline", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "/dev/sand/a\nb" }, wantErr: "control"},
		{name: "path with NUL", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "/dev/sand/a\x00b" }, wantErr: "control"},
		{name: "path with space", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Path = "/srv/my disk.img" }, wantErr: "blank"},
		{name: "path twice", change: func(tg *TargetGroup) { tg.Targets[2].LUNs[0].Path = "/dev/sand/lun-vm01" }, wantErr: "path /dev/sand/lun-vm01 is already exported by target iqn.2026-11.lan.example.san:vm01 LUN 0"},
		{name: "empty type", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Type = "" }, wantErr: "type is empty"},
		{name: "nullio type", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Type = "nullio" }, wantErr: `type "nullio" is unknown`},
		{name: "negative size", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Size = -1 }, wantErr: "size -1 is negative"},
		{name: "bad name", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Name = "../etc" }, wantErr: `LUN name "../etc" is malformed`},
		{name: "name twice", change: func(tg *TargetGroup) { tg.Targets[2].LUNs[0].Name = "vm01" }, wantErr: "name vm01 is already used"},
		{name: "bad serial", change: func(tg *TargetGroup) {
			lu := &tg.Targets[0].LUNs[0]
			lu.Serial = "a,b"
			lu.NAA = NAAFromSerial(lu.Serial)
		}, wantErr: `serial "a,b"`},
		{name: "serial twice", change: func(tg *TargetGroup) {
			tg.Targets[2].LUNs[0].Serial = tg.Targets[0].LUNs[0].Serial
			tg.Targets[2].LUNs[0].NAA = tg.Targets[0].LUNs[0].NAA
		}, wantErr: "serial 8a1b2c3d4e5f6a7b is already used"},
		{name: "NAA twice from different serials", change: func(tg *TargetGroup) {
			tg.Targets[0].LUNs[0].Serial, tg.Targets[0].LUNs[0].NAA = "disk1", NAAFromSerial("disk1")
			tg.Targets[2].LUNs[0].Serial, tg.Targets[2].LUNs[0].NAA = "disk-1", NAAFromSerial("disk-1")
		}, wantErr: "serial disk-1 gives NAA 6001405d1"},
		{name: "NAA missing", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].NAA = "" }, wantErr: "set NAA to NAAFromSerial(serial), 60014058a1b2c3d4e5f6a7b"},
		{name: "NAA upper case", change: func(tg *TargetGroup) {
			tg.Targets[0].LUNs[0].NAA = strings.ToUpper(tg.Targets[0].LUNs[0].NAA)
		}, wantErr: "32 lower-case hex digits"},
		{name: "NAA short", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].NAA = "6001405" }, wantErr: "malformed"},
		{name: "NAA not 6", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].NAA = "5" + tg.Targets[0].LUNs[0].NAA[1:] }, wantErr: "starting with 6"},
		{name: "NAA of another serial", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].NAA = NAAFromSerial("ffff") }, wantErr: "does not match serial 8a1b2c3d4e5f6a7b"},
		{name: "NAA without serial", change: func(tg *TargetGroup) { tg.Targets[0].LUNs[0].Serial = "" }, wantErr: "serial is empty"},
		{name: "bad initiator", change: func(tg *TargetGroup) { tg.Targets[0].Initiators[1] = "xen2" }, wantErr: `initiator: IQN "xen2" is malformed`},
		{name: "initiator twice", change: func(tg *TargetGroup) { tg.Targets[0].Initiators[1] = tg.Targets[0].Initiators[0] }, wantErr: "initiator iqn.2026-11.lan.example:xen1 is listed twice"},
		{name: "short CHAP secret", change: func(tg *TargetGroup) { tg.Targets[0].CHAP.Secret = "short" }, wantErr: "CHAP (IncomingUser): CHAP secret"},
		{name: "short mutual secret", change: func(tg *TargetGroup) { tg.Targets[0].MutualCHAP.Secret = "short" }, wantErr: "mutual CHAP (OutgoingUser): CHAP secret"},
		{name: "mutual CHAP alone", change: func(tg *TargetGroup) { tg.Targets[0].CHAP = nil }, wantErr: "but no CHAP (IncomingUser)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := pairGroup()
			tt.change(&tg)
			checkErr(t, tg.Validate(), tt.wantErr)
		})
	}
}

func TestValidateLUNName(t *testing.T) {
	tests := []struct {
		name    string
		lun     string
		wantErr string
	}{
		{name: "simple", lun: "vm01"},
		{name: "punctuation", lun: "Web_01.disk-a"},
		{name: "64 characters", lun: strings.Repeat("a", 64)},
		{name: "empty", lun: "", wantErr: "empty"},
		{name: "65 characters", lun: strings.Repeat("a", 65), wantErr: "malformed"},
		{name: "leading dash", lun: "-vm01", wantErr: "malformed"},
		{name: "leading dot", lun: ".vm01", wantErr: "malformed"},
		{name: "slash", lun: "vm/01", wantErr: "malformed"},
		{name: "space", lun: "vm 01", wantErr: "malformed"},
		{name: "equals", lun: "vm=01", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateLUNName(tt.lun), tt.wantErr)
		})
	}
}
