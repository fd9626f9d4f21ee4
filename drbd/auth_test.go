package drbd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestAuthValidate(t *testing.T) {
	tests := []struct {
		name    string
		auth    Auth
		wantErr string // "" for valid
	}{
		{name: "none", auth: Auth{}},
		{name: "sha256", auth: Auth{HMACAlg: HMACSHA256, Secret: testSecret}},
		{name: "sha512, shortest secret", auth: Auth{HMACAlg: HMACSHA512, Secret: "abcdefghijklmnop"}},
		{name: "longest secret", auth: Auth{HMACAlg: HMACSHA256, Secret: Secret(strings.Repeat("a", 63))}},
		{name: "base64url and dots", auth: Auth{HMACAlg: HMACSHA256, Secret: "A-b_c.d+e/f=0123456"}},
		{name: "64 characters: the kernel takes 63", auth: Auth{HMACAlg: HMACSHA256, Secret: Secret(strings.Repeat("a", 64))}, wantErr: "64 characters: want 16-63"},
		{name: "too short", auth: Auth{HMACAlg: HMACSHA256, Secret: "short-secret"}, wantErr: "12 characters: want 16-63"},
		{name: "a quote would end the string", auth: Auth{HMACAlg: HMACSHA256, Secret: `0123456789abcdef"x`}, wantErr: "character 17 is not"},
		{name: "a space", auth: Auth{HMACAlg: HMACSHA256, Secret: "0123456789 abcdef"}, wantErr: "character 11 is not"},
		{name: "a backslash", auth: Auth{HMACAlg: HMACSHA256, Secret: `0123456789abcdef\`}, wantErr: "character 17"},
		{name: "a newline", auth: Auth{HMACAlg: HMACSHA256, Secret: "0123456789abcdef\n"}, wantErr: "character 17"},
		{name: "non-ASCII", auth: Auth{HMACAlg: HMACSHA256, Secret: "0123456789abcdéf"}, wantErr: "character 15"},
		{name: "secret without algorithm", auth: Auth{Secret: testSecret}, wantErr: "needs cram-hmac-alg"},
		{name: "algorithm without secret", auth: Auth{HMACAlg: HMACSHA256}, wantErr: "needs a shared secret"},
		{name: "md5", auth: Auth{HMACAlg: "md5", Secret: testSecret}, wantErr: `cram-hmac-alg "md5": want sha256 or sha512`},
		{name: "sha1", auth: Auth{HMACAlg: "sha1", Secret: testSecret}, wantErr: `want sha256 or sha512`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := safeLabResource()
			r.Net.Auth = tt.auth
			err := r.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want ErrInvalid saying %q", err, tt.wantErr)
			}
			if s := string(tt.auth.Secret); len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}

// A Secret never shows in fmt or slog output; only the render writes it.
func TestSecretRedacted(t *testing.T) {
	r := fencedResource()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		if out := fmt.Sprintf(verb, r); strings.Contains(out, testSecret) || strings.Contains(out, fmt.Sprintf("%x", testSecret)) {
			t.Errorf("%s of a resource shows the secret: %s", verb, out)
		}
	}
	if s := r.Net.Auth.Secret.String(); s != "[redacted]" {
		t.Errorf("String() = %q", s)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("resource", "resource", r, "secret", r.Net.Auth.Secret, "auth", r.Net.Auth)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("resource", "resource", r, "secret", r.Net.Auth.Secret)
	if strings.Contains(buf.String(), testSecret) {
		t.Errorf("slog shows the secret:\n%s", buf.String())
	}
	for _, render := range []func(Resource) []byte{Render84, Render9} {
		if !strings.Contains(string(render(r)), `shared-secret "`+testSecret+`";`) {
			t.Errorf("the render lacks the secret:\n%s", render(r))
		}
	}
}

// FuzzSecretRender: a secret ValidateSecret accepts renders as one quoted
// shared-secret statement in the net section that reads back as exactly
// the secret, in both syntaxes.
func FuzzSecretRender(f *testing.F) {
	f.Add(testSecret)
	f.Add(`0123456789abcdef"; } on evil { disk /dev/sda`)
	f.Add("0123456789abcdef#comment")
	f.Fuzz(func(t *testing.T, secret string) {
		if ValidateSecret(Secret(secret)) != nil {
			return
		}
		r := safeLabResource()
		r.Net.Auth = Auth{HMACAlg: HMACSHA256, Secret: Secret(secret)}
		if err := r.Validate(); err != nil {
			t.Fatalf("ValidateSecret accepts, Validate refuses: %v", err)
		}
		for _, render := range []func(Resource) []byte{Render84, Render9} {
			stmts, err := parseConf(string(render(r)))
			if err != nil {
				t.Fatalf("does not read back: %v\n%s", err, render(r))
			}
			var got []string
			for _, s := range stmts {
				if s.key == "shared-secret" {
					if strings.Join(s.path, "/") != "resource r0/net" {
						t.Fatalf("shared-secret under %v", s.path)
					}
					got = append(got, s.val)
				}
			}
			if len(got) != 1 || got[0] != `"`+secret+`"` {
				t.Fatalf("shared-secret statements %q, want one holding the secret", got)
			}
		}
	})
}
