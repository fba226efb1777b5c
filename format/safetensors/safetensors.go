// Package safetensors reads and writes the safetensors format of Hugging
// Face: an 8-byte little-endian header length N, N bytes of JSON describing
// each tensor's dtype, shape and byte range, then the raw little-endian
// data buffer.
//
// Read converts F32, F16, BF16, F64, I64 and I32 tensors to float32 and
// validates the file as the reference Rust library does: the header length
// is bounded, the JSON is well formed, and the tensors' byte ranges match
// their shapes and tile the data buffer without gaps or overlaps. Write
// produces F32 or F16 files laid out as the Rust library lays them out.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/tensor"
)

// MaxHeaderLen is the largest JSON header Read accepts, in bytes (100 MB,
// the reference implementation's limit).
const MaxHeaderLen = 100_000_000

// maxElements bounds a tensor's element count so byte counts cannot
// overflow; real limits come from the data buffer's size.
const maxElements = 1 << 56

// metadataKey is the reserved header key holding free-form string metadata.
const metadataKey = "__metadata__"

// chunkBytes bounds the scratch buffer used when converting tensor data.
const chunkBytes = 4 << 20

// DType names an element type as it is spelled in a safetensors header.
type DType string

// Element types. Read accepts all of these; Write produces F32 or F16.
const (
	F32  DType = "F32"  // IEEE 754 binary32
	F16  DType = "F16"  // IEEE 754 binary16
	BF16 DType = "BF16" // bfloat16
	F64  DType = "F64"  // IEEE 754 binary64
	I64  DType = "I64"  // signed 64-bit integer
	I32  DType = "I32"  // signed 32-bit integer
	I8   DType = "I8"   // signed 8-bit integer (ReadRaw only)
	U8   DType = "U8"   // unsigned 8-bit integer (ReadRaw only)
)

// size returns the byte size of one element, or 0 for a dtype Read does
// not support.
func (d DType) size() int {
	switch d {
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case F64, I64:
		return 8
	case I8, U8:
		return 1
	}
	return 0
}

// File is the decoded content of a safetensors file.
type File struct {
	// Tensors maps each tensor name to its values, converted to float32.
	Tensors map[string]*tensor.Tensor
	// Metadata holds the "__metadata__" string map; empty if absent.
	Metadata map[string]string
	// Keys lists the tensor names in the order of their data offsets.
	Keys []string
}

type tensorInfo struct {
	DType       DType    `json:"dtype"`
	Shape       []uint64 `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

type entry struct {
	name   string
	info   tensorInfo
	shape  []int
	numel  int
	nbytes uint64
}

// Read decodes a safetensors file of size bytes read through r.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("safetensors: file has %d bytes, too short for the 8-byte header length", max(size, 0))
	}
	var lb [8]byte
	// Probe the last byte first, so a reader holding less than size bytes
	// fails before anything is allocated from the sizes the file claims.
	if err := readAt(r, lb[:1], size-1); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if err := readAt(r, lb[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > MaxHeaderLen {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the limit of %d bytes", n, MaxHeaderLen)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the %d bytes after the length field", n, size-8)
	}
	hdr := make([]byte, n)
	if err := readAt(r, hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: reading header: %w", err)
	}
	entries, meta, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.info.DType == I8 || e.info.DType == U8 {
			return nil, fmt.Errorf("safetensors: tensor %q has dtype %q, which is not supported as float (an integer, quantised tensor: int8 models are read with ReadRaw)", e.name, string(e.info.DType))
		}
	}
	bufStart := 8 + int64(n)
	bufLen := uint64(size - bufStart)
	if err := checkLayout(entries, bufLen); err != nil {
		return nil, err
	}
	f := &File{Tensors: make(map[string]*tensor.Tensor, len(entries)), Metadata: meta, Keys: make([]string, len(entries))}
	scratch := make([]byte, 0, chunkBytes)
	for i, e := range entries {
		data := make([]float32, e.numel)
		if err := readTensor(r, bufStart+int64(e.info.DataOffsets[0]), e.info.DType, data, &scratch); err != nil {
			return nil, fmt.Errorf("safetensors: reading tensor %q: %w", e.name, err)
		}
		f.Tensors[e.name] = &tensor.Tensor{Shape: e.shape, Data: data}
		f.Keys[i] = e.name
	}
	return f, nil
}

// ReadFile reads a safetensors file from disk; see Read.
func ReadFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return f, nil
}

// readAt fills p from offset off, reporting a short file as truncation.
func readAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return fmt.Errorf("file truncated: got %d of %d bytes at offset %d", n, len(p), off)
	}
	return err
}

// parseHeader decodes the header JSON into entries (in data-offset order)
// and metadata, validating each entry on its own.
func parseHeader(hdr []byte) ([]entry, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, errors.New("safetensors: header is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(hdr, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, errors.New("safetensors: header is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{'
		return nil, nil, fmt.Errorf("safetensors: bad header JSON: %v", err)
	}
	meta := map[string]string{}
	seen := map[string]bool{}
	var entries []entry
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: bad header JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, errors.New("safetensors: bad header JSON: object key is not a string")
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("safetensors: duplicate key %q in header", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("safetensors: bad header JSON at key %q: %v", name, err)
		}
		if name == metadataKey {
			if string(raw) == "null" {
				continue
			}
			var m map[string]string
			if err := json.Unmarshal(raw, &m); err != nil {
				return nil, nil, fmt.Errorf("safetensors: %s must map strings to strings: %v", metadataKey, err)
			}
			for k, v := range m {
				meta[k] = v
			}
			continue
		}
		e, err := parseEntry(name, raw)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the '}'
		return nil, nil, fmt.Errorf("safetensors: bad header JSON: %v", err)
	}
	// Only padding may follow the object.
	if len(bytes.Trim(hdr[dec.InputOffset():], " \t\r\n\x00")) != 0 {
		return nil, nil, errors.New("safetensors: bad header JSON: data after the object")
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].info.DataOffsets, entries[j].info.DataOffsets
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		if a[1] != b[1] {
			return a[1] < b[1]
		}
		return entries[i].name < entries[j].name
	})
	return entries, meta, nil
}

// parseEntry decodes and checks one tensor description.
func parseEntry(name string, raw json.RawMessage) (entry, error) {
	e := entry{name: name}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil || probe == nil {
		return e, fmt.Errorf("safetensors: tensor %q: entry is not a JSON object", name)
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if _, ok := probe[k]; !ok {
			return e, fmt.Errorf("safetensors: tensor %q: missing %q", name, k)
		}
	}
	if err := json.Unmarshal(raw, &e.info); err != nil {
		return e, fmt.Errorf("safetensors: tensor %q: bad entry: %v", name, oneLine(err))
	}
	if e.info.Shape == nil {
		return e, fmt.Errorf("safetensors: tensor %q: shape is not a list", name)
	}
	if len(e.info.DataOffsets) != 2 {
		return e, fmt.Errorf("safetensors: tensor %q: data_offsets must hold 2 numbers, has %d", name, len(e.info.DataOffsets))
	}
	dsize := e.info.DType.size()
	if dsize == 0 {
		return e, fmt.Errorf("safetensors: tensor %q has dtype %q, which is not supported (use F32, F16, BF16, F64, I64 or I32)", name, string(e.info.DType))
	}
	numel := uint64(1)
	e.shape = make([]int, len(e.info.Shape))
	for i, d := range e.info.Shape {
		hi, lo := bits.Mul64(numel, d)
		if hi != 0 || lo > maxElements || d > maxElements {
			return e, fmt.Errorf("safetensors: tensor %q: shape %s has too many elements", name, shapeString(e.info.Shape))
		}
		numel = lo
		e.shape[i] = int(d)
	}
	e.numel = int(numel)
	e.nbytes = numel * uint64(dsize)
	return e, nil
}

// checkLayout checks that the sorted entries' byte ranges match their
// shapes and tile the data buffer exactly.
func checkLayout(entries []entry, bufLen uint64) error {
	var pos uint64
	for _, e := range entries {
		b, end := e.info.DataOffsets[0], e.info.DataOffsets[1]
		if end < b {
			return fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] end before they begin", e.name, b, end)
		}
		if end > bufLen {
			return fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] exceed the %d-byte data buffer", e.name, b, end, bufLen)
		}
		if end-b != e.nbytes {
			return fmt.Errorf("safetensors: tensor %q: %s %s needs %d bytes, data_offsets [%d, %d] give %d",
				e.name, e.info.DType, shapeString(e.info.Shape), e.nbytes, b, end, end-b)
		}
		if b < pos {
			return fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] overlap the previous tensor, which ends at %d", e.name, b, end, pos)
		}
		if b > pos {
			return fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] leave a gap after byte %d", e.name, b, end, pos)
		}
		pos = end
	}
	if pos != bufLen {
		return fmt.Errorf("safetensors: the tensors cover %d bytes of the %d-byte data buffer", pos, bufLen)
	}
	return nil
}

// readTensor reads len(dst) elements of dtype dt at offset off, in chunks.
func readTensor(r io.ReaderAt, off int64, dt DType, dst []float32, scratch *[]byte) error {
	es := dt.size()
	per := chunkBytes / es
	for done := 0; done < len(dst); {
		k := min(len(dst)-done, per)
		buf := (*scratch)[:k*es]
		if err := readAt(r, buf, off+int64(done)*int64(es)); err != nil {
			return err
		}
		out := dst[done : done+k]
		switch dt {
		case F32:
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
			}
		case F16:
			for i := range out {
				out[i] = Float16ToFloat32(binary.LittleEndian.Uint16(buf[2*i:]))
			}
		case BF16:
			for i := range out {
				out[i] = bfloat16ToFloat32(binary.LittleEndian.Uint16(buf[2*i:]))
			}
		case F64:
			for i := range out {
				out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:])))
			}
		case I64:
			for i := range out {
				out[i] = float32(int64(binary.LittleEndian.Uint64(buf[8*i:])))
			}
		case I32:
			for i := range out {
				out[i] = float32(int32(binary.LittleEndian.Uint32(buf[4*i:])))
			}
		}
		done += k
	}
	return nil
}

// Write encodes tensors as a safetensors file of the given dtype (F32 or
// F16; F16 rounds to nearest even, overflowing to infinity).
//
// The data buffer holds the tensors in the order of keys; a nil keys means
// all tensors sorted by name. Every tensor in the map must be listed once.
// The header is compact JSON with "__metadata__" first (omitted when
// metadata is empty), then the tensors sorted by name, each as
// {"dtype","shape","data_offsets"}, padded with spaces to a multiple of 8
// bytes: with sorted keys the output matches the reference Rust library.
func Write(w io.Writer, keys []string, tensors map[string]*tensor.Tensor, metadata map[string]string, dtype DType) error {
	if dtype != F32 && dtype != F16 {
		return fmt.Errorf("safetensors: cannot write dtype %q, only F32 or F16", string(dtype))
	}
	if keys == nil {
		keys = make([]string, 0, len(tensors))
		for k := range tensors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	}
	listed := make(map[string]bool, len(keys))
	offsets := make(map[string][2]uint64, len(keys))
	var pos uint64
	for _, k := range keys {
		if listed[k] {
			return fmt.Errorf("safetensors: key %q listed twice", k)
		}
		listed[k] = true
		if k == metadataKey {
			return fmt.Errorf("safetensors: %q is reserved and cannot name a tensor", k)
		}
		if !utf8.ValidString(k) {
			return fmt.Errorf("safetensors: key %q is not valid UTF-8", k)
		}
		t, ok := tensors[k]
		if !ok || t == nil {
			return fmt.Errorf("safetensors: key %q has no tensor", k)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: tensor %q has negative shape %s", k, tensor.ShapeString(t.Shape))
			}
		}
		if n := tensor.NumelOf(t.Shape); n != len(t.Data) {
			return fmt.Errorf("safetensors: tensor %q: shape %s needs %d values, has %d", k, tensor.ShapeString(t.Shape), n, len(t.Data))
		}
		nb := uint64(len(t.Data)) * uint64(dtype.size())
		offsets[k] = [2]uint64{pos, pos + nb}
		pos += nb
	}
	for k := range tensors {
		if !listed[k] {
			return fmt.Errorf("safetensors: tensor %q is not listed in keys", k)
		}
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("safetensors: metadata %q is not valid UTF-8", k)
		}
	}

	hdr, err := header(keys, tensors, offsets, metadata, dtype)
	if err != nil {
		return err
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(len(hdr)))
	if _, err := w.Write(lb[:]); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	buf := make([]byte, 0, 1<<16)
	for _, k := range keys {
		data := tensors[k].Data
		for i := 0; i < len(data); {
			buf = buf[:0]
			for ; i < len(data) && len(buf)+4 <= cap(buf); i++ {
				if dtype == F32 {
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(data[i]))
				} else {
					buf = binary.LittleEndian.AppendUint16(buf, Float32ToFloat16(data[i]))
				}
			}
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("safetensors: %w", err)
			}
		}
	}
	return nil
}

// WriteFile writes a safetensors file atomically; see Write.
func WriteFile(path string, keys []string, tensors map[string]*tensor.Tensor, metadata map[string]string, dtype DType) error {
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error {
		return Write(w, keys, tensors, metadata, dtype)
	})
}

// header builds the padded header JSON.
func header(keys []string, tensors map[string]*tensor.Tensor, offsets map[string][2]uint64, metadata map[string]string, dtype DType) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	if len(metadata) > 0 {
		sep()
		writeString(&b, metadataKey)
		b.WriteString(":{")
		mk := make([]string, 0, len(metadata))
		for k := range metadata {
			mk = append(mk, k)
		}
		sort.Strings(mk)
		for i, k := range mk {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(&b, k)
			b.WriteByte(':')
			writeString(&b, metadata[k])
		}
		b.WriteByte('}')
	}
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	for _, k := range sorted {
		sep()
		writeString(&b, k)
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[`, dtype)
		for i, d := range tensors[k].Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, d)
		}
		o := offsets[k]
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, o[0], o[1])
	}
	b.WriteByte('}')
	if pad := (8 - b.Len()%8) % 8; pad > 0 {
		b.WriteString(strings.Repeat(" ", pad))
	}
	if b.Len() > MaxHeaderLen {
		return nil, fmt.Errorf("safetensors: header would be %d bytes, over the limit of %d", b.Len(), MaxHeaderLen)
	}
	return b.Bytes(), nil
}

// writeString writes s as a JSON string without HTML escaping, as
// serde_json writes it.
func writeString(b *bytes.Buffer, s string) {
	var sb bytes.Buffer
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(sb.Bytes(), []byte("\n")))
}

func shapeString(s []uint64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// oneLine keeps error text on a single line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
