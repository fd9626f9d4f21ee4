package dm

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The kernel's struct dm_ioctl (include/uapi/linux/dm-ioctl.h), 312 bytes:
//
//	u32 version[3]; u32 data_size; u32 data_start; u32 target_count;
//	s32 open_count; u32 flags; u32 event_nr; u32 padding; u64 dev;
//	char name[128]; char uuid[129]; char data[7];
//
// and struct dm_target_spec, 40 bytes, each followed by its parameter
// string: u64 sector_start; u64 length; s32 status; u32 next;
// char target_type[16].
const (
	headerSize = 312
	specSize   = 40
	nameLen    = 128
	uuidLen    = 129
	typeLen    = 16

	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offOpenCount   = 24
	offFlags       = 28
	offEventNr     = 32
	offDev         = 40
	offName        = 48
	offUUID        = offName + nameLen
)

// Flags of dm_ioctl.flags.
const (
	flagReadOnly    = 1 << 0
	flagSuspend     = 1 << 1
	flagStatusTable = 1 << 4
	flagActive      = 1 << 5
	flagBufferFull  = 1 << 8
)

// udevFlags go in event_nr's upper half; udev's device-mapper rules read
// them from the uevent (DM_COOKIE) and skip their work, as with
// `dmsetup --noudevrules`: sand makes /dev/mapper's node and the volume
// group's links itself, as LVM does in its no-udev mode.
const udevFlags = (0x0001 | 0x0002 | 0x0004 | 0x0008) << 16 // DM rules, subsystem, disk, other

var order = binary.NativeEndian

// header is the part of dm_ioctl sand reads and writes.
type header struct {
	dataSize, dataStart, targetCount uint32
	openCount                        int32
	flags, eventNr                   uint32
	dev                              Dev
	name, uuid                       string
}

// encodeDev is the kernel's huge_encode_dev for the dev field.
func encodeDev(d Dev) uint64 {
	return uint64(d.Minor&0xff) | uint64(d.Major)<<8 | uint64(d.Minor&^0xff)<<12
}

func decodeDev(v uint64) Dev {
	return Dev{Major: uint32((v >> 8) & 0xfff), Minor: uint32((v & 0xff) | ((v >> 12) & 0xfff00))}
}

// marshal makes a request buffer of size bytes (at least headerSize), the
// header first; the interface's version is 4.0.0, which every kernel with
// thin provisioning speaks.
func (h header) marshal(size int) ([]byte, error) {
	if len(h.name) >= nameLen || len(h.uuid) >= uuidLen {
		return nil, fmt.Errorf("device-mapper name %q or UUID %q too long", h.name, h.uuid)
	}
	b := make([]byte, size)
	order.PutUint32(b[0:], 4)
	order.PutUint32(b[offDataSize:], uint32(size))
	order.PutUint32(b[offDataStart:], headerSize)
	order.PutUint32(b[offTargetCount:], h.targetCount)
	order.PutUint32(b[offFlags:], h.flags)
	order.PutUint32(b[offEventNr:], h.eventNr)
	order.PutUint64(b[offDev:], encodeDev(h.dev))
	copy(b[offName:offName+nameLen-1], h.name)
	copy(b[offUUID:offUUID+uuidLen-1], h.uuid)
	return b, nil
}

func unmarshalHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, fmt.Errorf("device-mapper answer of %d bytes is shorter than its header", len(b))
	}
	return header{
		dataSize:    order.Uint32(b[offDataSize:]),
		dataStart:   order.Uint32(b[offDataStart:]),
		targetCount: order.Uint32(b[offTargetCount:]),
		openCount:   int32(order.Uint32(b[offOpenCount:])),
		flags:       order.Uint32(b[offFlags:]),
		eventNr:     order.Uint32(b[offEventNr:]),
		dev:         decodeDev(order.Uint64(b[offDev:])),
		name:        cString(b[offName : offName+nameLen]),
		uuid:        cString(b[offUUID : offUUID+uuidLen]),
	}, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// marshalLoad is a DM_TABLE_LOAD request: the header, then each target
// spec with its NUL-terminated parameters padded to 8 bytes; a spec's
// next is the distance from its own start to the next spec's.
func marshalLoad(name string, ts []Target) ([]byte, error) {
	var body []byte
	for _, t := range ts {
		if len(t.Type) >= typeLen {
			return nil, fmt.Errorf("target type %q too long", t.Type)
		}
		n := specSize + len(t.Params) + 1
		n = (n + 7) &^ 7
		spec := make([]byte, n)
		order.PutUint64(spec[0:], t.Start)
		order.PutUint64(spec[8:], t.Length)
		order.PutUint32(spec[20:], uint32(n))
		copy(spec[24:24+typeLen-1], t.Type)
		copy(spec[specSize:], t.Params)
		body = append(body, spec...)
	}
	b, err := header{name: name, targetCount: uint32(len(ts))}.marshal(headerSize + len(body))
	if err != nil {
		return nil, err
	}
	copy(b[headerSize:], body)
	return b, nil
}

// unmarshalTable reads a DM_TABLE_STATUS answer (with the table flag):
// there, a spec's next counts from the first spec.
func unmarshalTable(b []byte) (header, []Target, error) {
	h, err := unmarshalHeader(b)
	if err != nil {
		return h, nil, err
	}
	if h.flags&flagBufferFull != 0 {
		return h, nil, errBufferFull
	}
	if int(h.dataSize) > len(b) || h.dataStart < headerSize || h.dataStart > h.dataSize {
		return h, nil, fmt.Errorf("device-mapper answer for %s has data %d..%d in %d bytes", h.name, h.dataStart, h.dataSize, len(b))
	}
	data := b[h.dataStart:h.dataSize]
	var ts []Target
	off := 0
	for i := uint32(0); i < h.targetCount; i++ {
		if off < 0 || off+specSize > len(data) {
			return h, nil, fmt.Errorf("device-mapper table of %s: target %d lies outside the answer", h.name, i)
		}
		s := data[off:]
		end := bytes.IndexByte(s[specSize:], 0)
		if end < 0 {
			return h, nil, fmt.Errorf("device-mapper table of %s: target %d's parameters are not terminated", h.name, i)
		}
		ts = append(ts, Target{
			Start:  order.Uint64(s[0:]),
			Length: order.Uint64(s[8:]),
			Type:   cString(s[24 : 24+typeLen]),
			Params: string(s[specSize : specSize+end]),
		})
		next := int(order.Uint32(s[20:]))
		if i+1 < h.targetCount && next <= off {
			return h, nil, fmt.Errorf("device-mapper table of %s: target %d points back to offset %d", h.name, i, next)
		}
		off = next
	}
	return h, ts, nil
}

var errBufferFull = fmt.Errorf("device-mapper answer did not fit the buffer")
