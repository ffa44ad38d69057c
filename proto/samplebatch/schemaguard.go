package samplebatch

import (
	"encoding/binary"

	flatbuffers "github.com/google/flatbuffers/go"
)

// checkSchemaMessage rejects a first IPC message whose schema claims more fields
// than its metadata can hold: arrow-go allocates the claimed field count with make
// before reading it (outside any allocator), so a few bytes could claim billions.
// Each field is at least a 4-byte offset in the vector, which bounds an honest count.
func checkSchemaMessage(data []byte) error {
	if len(data) < 8 || binary.LittleEndian.Uint32(data) != 0xFFFFFFFF {
		return nil // not the framing arrow-go writes; the reader reports it
	}
	metaLen := int(binary.LittleEndian.Uint32(data[4:]))
	if metaLen < 8 || metaLen > len(data)-8 {
		return invalidf("schema message: metadata length %d, message %d bytes", metaLen, len(data))
	}
	meta := data[8 : 8+metaLen]
	root := int(flatbuffers.GetUOffsetT(meta))
	if root < 0 || root+4 > len(meta) {
		return invalidf("schema message: bad root offset")
	}
	msg := flatbuffers.Table{Bytes: meta, Pos: flatbuffers.UOffsetT(root)}
	if !inTable(&msg, 8) {
		return nil
	}
	o := msg.Offset(8) // Message.header
	if o == 0 {
		return nil
	}
	var schema flatbuffers.Table
	msg.Union(&schema, flatbuffers.UOffsetT(o))
	if int(schema.Pos)+4 > len(meta) || !inTable(&schema, 6) {
		return invalidf("schema message: bad header offset")
	}
	if fo := schema.Offset(6); fo != 0 { // Schema.fields
		vpos := int(fo) + int(schema.Pos)
		if vpos+4 > len(meta) {
			return invalidf("schema message: bad fields offset")
		}
		if n := schema.VectorLen(flatbuffers.UOffsetT(fo)); n < 0 || n > len(meta)/4 {
			return invalidf("schema message: claims %d fields in %d bytes of metadata", n, len(meta))
		}
	}
	return nil
}

// inTable reports whether t's vtable can be read up to field offset off.
func inTable(t *flatbuffers.Table, off int) bool {
	if int(t.Pos)+4 > len(t.Bytes) {
		return false
	}
	vt := int(t.Pos) - int(flatbuffers.GetSOffsetT(t.Bytes[t.Pos:]))
	return vt >= 0 && vt+4 <= len(t.Bytes) && vt+off+2 <= len(t.Bytes)
}
