package failover

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// PairKeySize is the length of the pair key: an HMAC-SHA256 key only the
// two storage boxes hold (never the witness).
const PairKeySize = 32

// MessageMaxAge is how far a signed message's time may lie from this
// box's clock, either way: older is stale, newer is skew. The boxes'
// clocks must agree within it (NTP).
const MessageMaxAge = 30 * time.Second

// Reasons a message is refused; every refusal wraps one of them.
var (
	// ErrUnsigned: not a signed message at all (an old sand, a forger
	// without the format, garbage).
	ErrUnsigned = errors.New("not a signed message")
	// ErrBadMAC: the MAC does not match under the pair key (the sender
	// does not hold it: a witness, a forger, or a box with another key).
	ErrBadMAC = errors.New("bad MAC: not signed with the pair key")
	// ErrNotPeer: signed by a name that is not this box's configured
	// peer, or sent by one.
	ErrNotPeer = errors.New("not from the configured peer")
	// ErrWitness: sent by the witness, which only votes.
	ErrWitness = errors.New("from the witness, which only votes")
	// ErrMisaddressed: signed for another box or another kind of message
	// (an answer to another question, say).
	ErrMisaddressed = errors.New("addressed to another box or question")
	// ErrStale: signed more than MessageMaxAge ago, or that far ahead
	// (clock skew).
	ErrStale = errors.New("stale")
	// ErrReplay: this very message was accepted before.
	ErrReplay = errors.New("replayed")
)

// ParseKeys decodes a key file: one base64 key of size bytes per line,
// blank lines ignored. The first key signs or seals; every key is
// accepted when checking, so a key can be replaced without a moment in
// which two members disagree (README: rotating a key). what names the key
// in errors.
func ParseKeys(text, what string, size int) ([][]byte, error) {
	var keys [][]byte
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("%s, line %d: decode (want base64 of %d bytes): %w", what, i+1, size, err)
		}
		if len(key) != size {
			return nil, fmt.Errorf("%s, line %d: %d bytes, want %d (generate one with: head -c %d /dev/urandom | base64)", what, i+1, len(key), size, size)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key (want base64 of %d bytes; generate one with: head -c %d /dev/urandom | base64)", what, size, size)
	}
	return keys, nil
}

// ParsePairKey decodes the pair key file (see ParseKeys).
func ParsePairKey(text string) ([][]byte, error) {
	return ParseKeys(text, "pair key", PairKeySize)
}

// PairAuth is what a storage box needs to sign and check the messages it
// exchanges with its peer: intents (serf user events), queries and their
// answers. The witness has none: it only votes.
type PairAuth struct {
	// Keys: the first signs, any verifies (see ParseKeys).
	Keys    [][]byte
	Self    string
	Peer    string
	Witness string // "" without a witness
}

func (a PairAuth) check() error {
	if len(a.Keys) == 0 {
		return errors.New("pair auth: no pair key")
	}
	for _, k := range a.Keys {
		if len(k) != PairKeySize {
			return fmt.Errorf("pair auth: key is %d bytes, want %d", len(k), PairKeySize)
		}
	}
	if a.Self == "" || a.Peer == "" || a.Self == a.Peer {
		return fmt.Errorf("pair auth: this box %q and its peer %q must be two names", a.Self, a.Peer)
	}
	return nil
}

// message is the signed envelope of every intent, query and answer
// between the boxes. Its wire form (version 1), all integers big-endian:
//
//	"sp" 0x01                    magic and version
//	u8 len, kind                 the intent event or query name; "answer:" + the query's for an answer
//	u8 len, from                 the signer's serf name
//	u8 len, to                   the receiver's serf name
//	i64 time                     Unix nanoseconds when signed
//	[16] nonce                   random, once per message
//	[16] re                      an answer: its question's nonce; else zeros
//	u32 len, payload
//	[32] HMAC-SHA256(pair key, every byte above)
//
// The MAC binds sender, receiver, kind, payload, time and nonce: a
// message cannot be re-addressed, re-purposed, or replayed past the
// window, and within it the nonce catches a replay.
type message struct {
	Kind, From, To string
	Time           time.Time
	Nonce          [16]byte
	Re             [16]byte
	Payload        []byte
}

const (
	macSize     = sha256.Size
	maxNameLen  = 255
	fixedFields = 3 + 3 + 8 + 16 + 16 + 4
)

var magic = []byte{'s', 'p', 1}

// MessageOverhead is what signing adds to a payload, at most.
const MessageOverhead = fixedFields + 3*maxNameLen + macSize

func answerKind(query string) string { return "answer:" + query }

func (m message) body() ([]byte, error) {
	for _, s := range []string{m.Kind, m.From, m.To} {
		if s == "" || len(s) > maxNameLen {
			return nil, fmt.Errorf("sign a message: name %q is empty or longer than %d bytes", s, maxNameLen)
		}
	}
	b := make([]byte, 0, fixedFields+len(m.Kind)+len(m.From)+len(m.To)+len(m.Payload)+macSize)
	b = append(b, magic...)
	for _, s := range []string{m.Kind, m.From, m.To} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixNano()))
	b = append(b, m.Nonce[:]...)
	b = append(b, m.Re[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Payload)))
	b = append(b, m.Payload...)
	return b, nil
}

func mac(key, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return h.Sum(nil)
}

// seal signs m with key.
func seal(key []byte, m message) ([]byte, error) {
	b, err := m.body()
	if err != nil {
		return nil, err
	}
	return append(b, mac(key, b)...), nil
}

// parseMessage reads the envelope without checking its MAC: it says who
// the message claims to be from, for the refusal's record. body is what
// the MAC covers.
func parseMessage(b []byte) (m message, body, sum []byte, err error) {
	unsigned := func(what string) error { return fmt.Errorf("%w (%s)", ErrUnsigned, what) }
	if !bytes.HasPrefix(b, magic) {
		return message{}, nil, nil, unsigned("no envelope")
	}
	rest := b[len(magic):]
	var fields [3]string
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) || rest[0] == 0 {
			return message{}, nil, nil, unsigned("truncated names")
		}
		fields[i] = string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	}
	m.Kind, m.From, m.To = fields[0], fields[1], fields[2]
	if len(rest) < 8+16+16+4 {
		return message{}, nil, nil, unsigned("truncated header")
	}
	m.Time = time.Unix(0, int64(binary.BigEndian.Uint64(rest)))
	copy(m.Nonce[:], rest[8:24])
	copy(m.Re[:], rest[24:40])
	n := binary.BigEndian.Uint32(rest[40:44])
	rest = rest[44:]
	if uint64(len(rest)) != uint64(n)+macSize {
		return message{}, nil, nil, unsigned(fmt.Sprintf("payload of %d bytes with %d bytes left", n, len(rest)))
	}
	m.Payload = rest[:n]
	body = b[:len(b)-macSize]
	return m, body, b[len(b)-macSize:], nil
}

// Refusal is a message a box dropped: what it was, whom it came from (the
// serf sender where serf names one, else the name the message claims), and
// why. The pair records each as an event.
type Refusal struct {
	Time time.Time
	// What: "intent", "query sand-outdate", "answer to sand-handover".
	What string
	// From: the sender as far as this box can tell ("unknown" when the
	// message names none).
	From   string
	Reason error
}

func (r Refusal) String() string {
	return fmt.Sprintf("refused %s from %s: %v", r.What, r.From, r.Reason)
}

// guard signs and checks the messages of one box (PairAuth), and
// remembers the nonces it accepted within the window.
type guard struct {
	auth PairAuth
	now  func() time.Time
	mu   sync.Mutex
	seen map[[16]byte]time.Time // nonce -> when it leaves the window
}

// maxSeen bounds the replay cache; only messages with a good MAC from the
// peer enter it, a few per minute in normal use. Past pruneSeen entries,
// each new one first drops those whose time has left the window.
const (
	maxSeen   = 1 << 14
	pruneSeen = 256
)

func newGuard(a PairAuth, now func() time.Time) (*guard, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	return &guard{auth: a, now: now, seen: map[[16]byte]time.Time{}}, nil
}

// sign makes a message of kind for to; re is the question's nonce for an
// answer.
func (g *guard) sign(kind, to string, re [16]byte, payload []byte) ([]byte, message, error) {
	m := message{Kind: kind, From: g.auth.Self, To: to, Time: g.now(), Re: re, Payload: payload}
	if _, err := rand.Read(m.Nonce[:]); err != nil {
		return nil, message{}, fmt.Errorf("sign a message: %w", err)
	}
	b, err := seal(g.auth.Keys[0], m)
	return b, m, err
}

// expect is what a message must be to be accepted.
type expect struct {
	kind string
	from string // the only acceptable signer
	re   [16]byte
	// sender is the serf-level sender where serf names one (a query's
	// source node, an answer's responder), "" for a user event, which
	// carries none.
	sender string
}

// open checks b against want and returns the message. The second result
// names the sender for the record (see Refusal), also on error.
func (g *guard) open(b []byte, want expect) (message, string, error) {
	from := want.sender
	refuse := func(err error) (message, string, error) { return message{}, from, err }
	// Who serf says sent it, when it says: the witness and other members
	// are refused whatever they sent.
	switch {
	case want.sender != "" && g.auth.Witness != "" && want.sender == g.auth.Witness:
		return refuse(ErrWitness)
	case want.sender != "" && want.sender != want.from:
		return refuse(fmt.Errorf("%w: sent by %s, not %s", ErrNotPeer, want.sender, want.from))
	}
	m, body, sum, err := parseMessage(b)
	if err != nil {
		if from == "" {
			from = "unknown"
		}
		return refuse(err)
	}
	if from == "" {
		from = m.From
	}
	good := false
	for _, k := range g.auth.Keys {
		if hmac.Equal(sum, mac(k, body)) {
			good = true
		}
	}
	witness := g.auth.Witness != "" && m.From == g.auth.Witness
	switch {
	case !good && witness:
		return refuse(fmt.Errorf("%w (%v)", ErrWitness, ErrBadMAC))
	case !good:
		return refuse(ErrBadMAC)
	case witness:
		return refuse(ErrWitness)
	case m.From != want.from:
		return refuse(fmt.Errorf("%w: signed as %s, not %s", ErrNotPeer, m.From, want.from))
	case m.To != g.auth.Self || m.Kind != want.kind || m.Re != want.re:
		return refuse(fmt.Errorf("%w: a %q for %s", ErrMisaddressed, m.Kind, m.To))
	}
	now := g.now()
	if age := now.Sub(m.Time); age > MessageMaxAge || age < -MessageMaxAge {
		return refuse(fmt.Errorf("%w: signed %s ago (more than %s either way: check both boxes' clocks)", ErrStale, age.Round(time.Millisecond), MessageMaxAge))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[m.Nonce]; dup {
		return refuse(ErrReplay)
	}
	if len(g.seen) >= pruneSeen {
		for n, until := range g.seen {
			if now.After(until) {
				delete(g.seen, n)
			}
		}
	}
	if len(g.seen) >= maxSeen {
		return refuse(fmt.Errorf("%w: more than %d messages within %s", ErrReplay, maxSeen, MessageMaxAge))
	}
	// A nonce is kept while its message could still pass the age check.
	g.seen[m.Nonce] = m.Time.Add(MessageMaxAge)
	return m, from, nil
}
