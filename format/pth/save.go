package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/mobileone-go/mobileone/tensor"
)

// Save writes sd as a torch.save checkpoint in the zip layout torch 1.13
// writes: stored (uncompressed) entries archive/data.pkl (pickle protocol 2),
// archive/data/<i> (one little-endian float32 storage per tensor, its data
// aligned to 64 bytes like torch) and archive/version. torch.load reads it
// back as an OrderedDict of contiguous float32 tensors, keys in the order of
// keys, which must list every key of sd exactly once.
func Save(w io.Writer, keys []string, sd map[string]*tensor.Tensor) error {
	return SaveWithMetadata(w, keys, sd, nil)
}

// MetadataEntry is the archive entry (under the archive's folder) that holds
// the string metadata SaveWithMetadata writes, as a JSON object. torch.load
// reads only data.pkl and the storages it names, so the entry travels with
// the file without changing what PyTorch loads.
const MetadataEntry = "extra/mobileone.json"

// MaxMetadataBytes bounds the metadata entry LoadWithMetadata reads.
const MaxMetadataBytes = 1 << 20

// SaveWithMetadata is Save plus string metadata (e.g. the model's
// configuration and preprocessing) written to MetadataEntry. A nil or empty
// meta writes no entry, exactly like Save.
func SaveWithMetadata(w io.Writer, keys []string, sd map[string]*tensor.Tensor, meta map[string]string) error {
	var metaJSON []byte
	if len(meta) > 0 {
		for k, v := range meta {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return fmt.Errorf("pth: metadata %q is not valid UTF-8", k)
			}
		}
		var err error
		if metaJSON, err = json.Marshal(meta); err != nil {
			return fmt.Errorf("pth: metadata: %w", err)
		}
		if len(metaJSON) > MaxMetadataBytes {
			return fmt.Errorf("pth: metadata is %d bytes, over the %d-byte limit", len(metaJSON), MaxMetadataBytes)
		}
	}
	if len(keys) != len(sd) {
		return fmt.Errorf("pth: Save got %d keys for %d tensors", len(keys), len(sd))
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			return fmt.Errorf("pth: Save got key %q twice", k)
		}
		seen[k] = true
		if !utf8.ValidString(k) {
			return fmt.Errorf("pth: Save key %q is not valid UTF-8", k)
		}
		t, ok := sd[k]
		if !ok || t == nil {
			return fmt.Errorf("pth: Save has no tensor for key %q", k)
		}
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("pth: Save tensor %q has negative shape %s", k, tensor.ShapeString(t.Shape))
			}
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("pth: Save tensor %q shape %s needs %d values, has %d", k, tensor.ShapeString(t.Shape), n, len(t.Data))
		}
		if int64(len(t.Data))*4 >= math.MaxUint32 {
			return fmt.Errorf("pth: Save tensor %q is 4 GiB or larger", k)
		}
	}

	const prefix = "archive/"
	cw := &countWriter{w: w}
	zw := zip.NewWriter(cw)
	put := func(name string, data []byte) error {
		if err := zw.Flush(); err != nil {
			return err
		}
		// Pad the local header's extra field so the data starts on a 64-byte
		// boundary, as torch's PyTorchStreamWriter does.
		const hdr = 30
		pad := int((64 - (cw.n+hdr+int64(len(name)))%64) % 64)
		if pad > 0 && pad < 4 {
			pad += 64
		}
		var extra []byte
		if pad > 0 {
			extra = make([]byte, pad)
			copy(extra, "FB")
			binary.LittleEndian.PutUint16(extra[2:], uint16(pad-4))
			for i := 4; i < pad; i++ {
				extra[i] = 'Z'
			}
		}
		fw, err := zw.CreateRaw(&zip.FileHeader{
			Name:               name,
			Method:             zip.Store,
			CRC32:              crc32.ChecksumIEEE(data),
			CompressedSize64:   uint64(len(data)),
			UncompressedSize64: uint64(len(data)),
			Extra:              extra,
		})
		if err != nil {
			return err
		}
		_, err = fw.Write(data)
		return err
	}

	if err := put(prefix+"data.pkl", statePickle(keys, sd)); err != nil {
		return fmt.Errorf("pth: %w", err)
	}
	for i, k := range keys {
		t := sd[k]
		buf := make([]byte, 4*len(t.Data))
		for j, v := range t.Data {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		if err := put(prefix+"data/"+strconv.Itoa(i), buf); err != nil {
			return fmt.Errorf("pth: %w", err)
		}
	}
	if err := put(prefix+"version", []byte("3\n")); err != nil {
		return fmt.Errorf("pth: %w", err)
	}
	if metaJSON != nil {
		if err := put(prefix+MetadataEntry, metaJSON); err != nil {
			return fmt.Errorf("pth: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("pth: %w", err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pickleWriter emits the protocol-2 opcodes torch.save uses for a state_dict.
type pickleWriter struct {
	bytes.Buffer
	memo map[string]byte // memoised globals/strings -> memo index
}

func (p *pickleWriter) int(v int) {
	switch {
	case v >= 0 && v < 1<<8:
		p.WriteByte('K') // BININT1
		p.WriteByte(byte(v))
	case v >= 0 && v < 1<<16:
		p.WriteByte('M') // BININT2
		p.WriteByte(byte(v))
		p.WriteByte(byte(v >> 8))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.WriteByte('J') // BININT
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(int32(v)))
		p.Write(b[:])
	default:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(int64(v)))
		n := 8
		for n > 1 && ((b[n-1] == 0 && b[n-2]&0x80 == 0) || (b[n-1] == 0xff && b[n-2]&0x80 != 0)) {
			n--
		}
		p.WriteByte(0x8a) // LONG1
		p.WriteByte(byte(n))
		p.Write(b[:n])
	}
}

func (p *pickleWriter) str(s string) {
	p.WriteByte('X') // BINUNICODE
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(len(s)))
	p.Write(b[:])
	p.WriteString(s)
}

// once emits the value the first time (memoising it with BINPUT) and a
// BINGET afterwards.
func (p *pickleWriter) once(id string, emit func()) {
	if i, ok := p.memo[id]; ok {
		p.WriteByte('h') // BINGET
		p.WriteByte(i)
		return
	}
	emit()
	i := byte(len(p.memo))
	p.memo[id] = i
	p.WriteByte('q') // BINPUT
	p.WriteByte(i)
}

func (p *pickleWriter) global(module, name string) {
	p.once(module+"."+name, func() {
		p.WriteByte('c') // GLOBAL
		p.WriteString(module + "\n" + name + "\n")
	})
}

func (p *pickleWriter) tuple(vs []int) {
	switch len(vs) {
	case 0:
		p.WriteByte(')') // EMPTY_TUPLE
		return
	case 1, 2, 3:
		for _, v := range vs {
			p.int(v)
		}
		p.WriteByte([]byte{0x85, 0x86, 0x87}[len(vs)-1]) // TUPLE1..3
		return
	}
	p.WriteByte('(')
	for _, v := range vs {
		p.int(v)
	}
	p.WriteByte('t') // TUPLE
}

// statePickle builds
//
//	OrderedDict([(key, _rebuild_tensor_v2(
//	    persistent_id(('storage', torch.FloatStorage, str(i), 'cpu', numel)),
//	    0, shape, contiguous_stride, False, OrderedDict())), ...])
func statePickle(keys []string, sd map[string]*tensor.Tensor) []byte {
	p := &pickleWriter{memo: map[string]byte{}}
	p.Write([]byte{0x80, 2}) // PROTO 2
	p.global("collections", "OrderedDict")
	p.WriteString(")R") // EMPTY_TUPLE, REDUCE
	const batch = 1000  // like pickle's SETITEMS batching
	for i, k := range keys {
		if i%batch == 0 {
			p.WriteByte('(') // MARK
		}
		t := sd[k]
		p.str(k)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteByte('(')
		// persistent id tuple
		p.WriteByte('(')
		p.once("'storage'", func() { p.str("storage") })
		p.global("torch", "FloatStorage")
		p.str(strconv.Itoa(i))
		p.once("'cpu'", func() { p.str("cpu") })
		p.int(len(t.Data))
		p.WriteByte('t')
		p.WriteByte('Q') // BINPERSID
		p.int(0)         // storage_offset
		p.tuple(t.Shape)
		p.tuple(contiguousStride(t.Shape))
		p.WriteByte(0x89) // NEWFALSE: requires_grad
		p.global("collections", "OrderedDict")
		p.WriteString(")R") // backward_hooks = OrderedDict()
		p.WriteString("tR") // TUPLE, REDUCE
		if i%batch == batch-1 || i == len(keys)-1 {
			p.WriteByte('u') // SETITEMS
		}
	}
	p.WriteByte('.') // STOP
	return p.Bytes()
}

// contiguousStride returns torch's row-major strides for shape (sizes of 0
// count as 1, as torch does).
func contiguousStride(shape []int) []int {
	st := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= max(shape[i], 1)
	}
	return st
}
