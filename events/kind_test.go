package events

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
	"time"
)

// Every Kind constant has its label and tone in the table: a kind added
// without them would show as its raw value on a plain badge.
func TestEveryKindHasALabelAndATone(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "kind.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Kind" {
				continue
			}
			for i, name := range v.Names {
				declared++
				value, err := strconv.Unquote(v.Values[i].(*ast.BasicLit).Value)
				if err != nil {
					t.Fatalf("%s: %v", name.Name, err)
				}
				if _, ok := kinds[Kind(value)]; !ok {
					t.Errorf("%s (%q) has no entry in kinds", name.Name, value)
				}
			}
		}
	}
	if declared != len(kinds) {
		t.Errorf("%d Kind constants, %d entries in kinds", declared, len(kinds))
	}
}

func TestLabelAndTone(t *testing.T) {
	tests := []struct {
		name  string
		kind  Kind
		label string
		tone  Tone
	}{
		{"box change", LUNCreated, "LUN created", TonePlain},
		{"removal", GroupDeleted, "Group deleted", ToneWarn},
		{"failed step", StepFailed, "Failover step failed", ToneBad},
		{"split brain", SplitBrain, "Split brain", ToneBad},
		{"pair whole again", PeerJoined, "Peer joined", ToneGood},
		{"unknown kind", "disk-replaced", "disk replaced", TonePlain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.Label(); got != tt.label {
				t.Errorf("Label() = %q, want %q", got, tt.label)
			}
			if got := tt.kind.Tone(); got != tt.tone {
				t.Errorf("Tone() = %q, want %q", got, tt.tone)
			}
		})
	}
}

// The API's JSON carries the kind's value as it always has.
func TestEventJSON(t *testing.T) {
	e := Event{Time: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Kind: Promoted, Message: "san2 is primary"}
	got, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"2026-11-22T12:00:00Z","kind":"failover-promoted","message":"san2 is primary"}`; string(got) != want {
		t.Errorf("JSON %s, want %s", got, want)
	}
}
