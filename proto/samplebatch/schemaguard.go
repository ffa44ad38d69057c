package samplebatch

import (
	"encoding/binary"
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// The Arrow IPC reader sizes some allocations by vector lengths read from the
// flatbuffer metadata without checking them against the buffer: a schema
// claiming 2^32 fields is a 100-GiB make. checkMetadata walks every message's
// metadata first and refuses a vector that cannot fit in its buffer. Field
// numbers are those of Arrow's Message.fbs and Schema.fbs.
const (
	fbMessageHeaderType = 1 // Message.header_type
	fbMessageHeader     = 2 // Message.header
	fbMessageBodyLength = 3 // Message.bodyLength
	fbMessageCustomMeta = 4 // Message.custom_metadata
	fbSchemaFields      = 1 // Schema.fields
	fbSchemaCustomMeta  = 2 // Schema.custom_metadata
	fbFieldChildren     = 5 // Field.children
	fbFieldCustomMeta   = 6 // Field.custom_metadata
	fbHeaderSchema      = 1 // MessageHeader.Schema
	ipcContinuation     = 0xFFFFFFFF
	uoffsetSize         = flatbuffers.SizeUOffsetT
	maxFieldDepth       = 64 // nesting the schema can have; ours has 3 levels
)

// checkMetadata verifies the metadata of every message of an IPC stream.
// Framing it cannot follow is left for the IPC reader to report.
func checkMetadata(data []byte) error {
	for pos, msg := 0, 0; pos+8 <= len(data); msg++ {
		n := binary.LittleEndian.Uint32(data[pos:])
		pos += 4
		if n == ipcContinuation {
			n = binary.LittleEndian.Uint32(data[pos:])
			pos += 4
		}
		if n == 0 || int64(n) > int64(len(data)-pos) {
			return nil
		}
		meta := data[pos : pos+int(n)]
		pos += int(n)
		body, err := checkMessage(meta)
		if err != nil {
			return fmt.Errorf("message %d: %w", msg, err)
		}
		if body < 0 || body > int64(len(data)-pos) {
			return nil
		}
		pos += int(body)
	}
	return nil
}

// checkMessage checks one message's metadata and returns its body length.
func checkMessage(meta []byte) (int64, error) {
	if len(meta) < uoffsetSize {
		return 0, nil
	}
	t := &flatbuffers.Table{Bytes: meta, Pos: flatbuffers.GetUOffsetT(meta)}
	if err := checkVector(t, fbMessageCustomMeta, "custom_metadata"); err != nil {
		return 0, err
	}
	var body int64
	if o := field(t, fbMessageBodyLength); o != 0 {
		body = t.GetInt64(o + t.Pos)
	}
	if o := field(t, fbMessageHeaderType); o == 0 || t.GetByte(o+t.Pos) != fbHeaderSchema {
		return body, nil
	}
	o := field(t, fbMessageHeader)
	if o == 0 {
		return body, nil
	}
	var s flatbuffers.Table
	t.Union(&s, o)
	if err := checkVector(&s, fbSchemaCustomMeta, "schema custom_metadata"); err != nil {
		return 0, err
	}
	return body, checkFields(&s, fbSchemaFields, 0)
}

// checkFields checks the vector of Field tables in t's field slot and, in
// turn, each field's metadata and children.
func checkFields(t *flatbuffers.Table, slot int, depth int) error {
	if depth > maxFieldDepth {
		return fmt.Errorf("schema nests fields deeper than %d", maxFieldDepth)
	}
	if err := checkVector(t, slot, "fields"); err != nil {
		return err
	}
	o := field(t, slot)
	if o == 0 {
		return nil
	}
	start, n := t.Vector(o), t.VectorLen(o)
	for i := range n {
		at := start + flatbuffers.UOffsetT(i*uoffsetSize)
		f := &flatbuffers.Table{Bytes: t.Bytes, Pos: t.Indirect(at)}
		if err := checkVector(f, fbFieldCustomMeta, "field custom_metadata"); err != nil {
			return err
		}
		if err := checkFields(f, fbFieldChildren, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkVector refuses a vector of offsets in t's field slot whose stated
// length runs past the end of the buffer.
func checkVector(t *flatbuffers.Table, slot int, name string) error {
	o := field(t, slot)
	if o == 0 {
		return nil
	}
	start, n := int64(t.Vector(o)), int64(t.VectorLen(o))
	if n*uoffsetSize > int64(len(t.Bytes))-start {
		return fmt.Errorf("%s states %d entries, more than its %d-byte metadata holds", name, n, len(t.Bytes))
	}
	return nil
}

// field is the offset of field slot in t, 0 if absent.
func field(t *flatbuffers.Table, slot int) flatbuffers.UOffsetT {
	return flatbuffers.UOffsetT(t.Offset(flatbuffers.VOffsetT(4 + 2*slot)))
}
