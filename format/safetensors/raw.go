package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/tensor"
)

// RawTensor is a tensor as stored: its dtype, shape and little-endian
// bytes (int8 models keep I8 weights, I32 biases, F32 scales).
type RawTensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// RawFile is a safetensors file read without conversion.
type RawFile struct {
	Tensors  map[string]RawTensor
	Metadata map[string]string
	Keys     []string // in data-offset order
}

// ReadRaw reads a safetensors file of any supported dtype (I8 and U8
// included) without converting the data, with the same checks as Read.
func ReadRaw(r io.ReaderAt, size int64) (*RawFile, error) {
	if size < 8 {
		return nil, fmt.Errorf("safetensors: file has %d bytes, too short for the 8-byte header length", max(size, 0))
	}
	var lb [8]byte
	if err := readAt(r, lb[:1], size-1); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if err := readAt(r, lb[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: reading header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > MaxHeaderLen || n > uint64(size-8) {
		return nil, fmt.Errorf("safetensors: header length %d does not fit the %d-byte file", n, size)
	}
	hdr := make([]byte, n)
	if err := readAt(r, hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: reading header: %w", err)
	}
	entries, meta, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	bufStart := 8 + int64(n)
	if err := checkLayout(entries, uint64(size-bufStart)); err != nil {
		return nil, err
	}
	f := &RawFile{Tensors: make(map[string]RawTensor, len(entries)), Metadata: meta}
	for _, e := range entries {
		data := make([]byte, e.nbytes)
		if err := readAt(r, data, bufStart+int64(e.info.DataOffsets[0])); err != nil {
			return nil, fmt.Errorf("safetensors: reading tensor %q: %w", e.name, err)
		}
		f.Tensors[e.name] = RawTensor{DType: e.info.DType, Shape: e.shape, Data: data}
		f.Keys = append(f.Keys, e.name)
	}
	return f, nil
}

// ReadRawFile reads a file from disk; see ReadRaw.
func ReadRawFile(path string) (*RawFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := ReadRaw(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return f, nil
}

// WriteRaw writes tensors of mixed dtypes as stored (data in key order,
// header sorted by name as Write does).
func WriteRaw(w io.Writer, tensors map[string]RawTensor, metadata map[string]string) error {
	keys := make([]string, 0, len(tensors))
	for k := range tensors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	offsets := map[string][2]uint64{}
	var pos uint64
	for _, k := range keys {
		t := tensors[k]
		if t.DType.size() == 0 || len(t.Data) != tensor.NumelOf(t.Shape)*t.DType.size() {
			return fmt.Errorf("safetensors: tensor %q: %d bytes for %s %v", k, len(t.Data), t.DType, t.Shape)
		}
		offsets[k] = [2]uint64{pos, pos + uint64(len(t.Data))}
		pos += uint64(len(t.Data))
	}
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
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
	for i, k := range keys {
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		writeString(&b, k)
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[`, tensors[k].DType)
		for j, d := range tensors[k].Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, d)
		}
		o := offsets[k]
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, o[0], o[1])
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(b.Len()))
	if _, err := w.Write(lb[:]); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	for _, k := range keys {
		if _, err := w.Write(tensors[k].Data); err != nil {
			return fmt.Errorf("safetensors: %w", err)
		}
	}
	return nil
}

// WriteRawFile writes a file atomically (no partial file on error); see
// WriteRaw.
func WriteRawFile(path string, tensors map[string]RawTensor, metadata map[string]string) error {
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error { return WriteRaw(w, tensors, metadata) })
}
