// Package npy reads and writes NumPy .npy files holding float32 arrays.
//
// Only little-endian float32 ('<f4') arrays in C order are supported; any
// other dtype or layout is reported as an error that says how to convert
// the array in NumPy. Headers of format versions 1.0, 2.0 and 3.0 are
// read; files are written as version 1.0 (2.0 if the header would not fit),
// byte-identical to numpy.save for the same float32 array.
//
// Read never trusts sizes from the file: the shape is checked for negative
// and overflowing dimensions and capped at MaxElements before any data is
// allocated, and large arrays are read in chunks so a short file claiming
// a huge shape fails without allocating for the claim.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/tensor"
)

// MaxElements is the largest number of elements Read accepts.
const MaxElements = 1 << 31

// MaxHeaderLen is the largest header (the dict text) Read accepts, in bytes.
const MaxHeaderLen = 1 << 20

const (
	magic      = "\x93NUMPY"
	arrayAlign = 64
	// growthAxisMaxDigits mirrors numpy's GROWTH_AXIS_MAX_DIGITS: numpy pads
	// the header with spare spaces so the first axis can grow in place.
	growthAxisMaxDigits = 21
	// chunkBytes is how much data Read decodes per step for large arrays.
	chunkBytes = 16 << 20
)

// Read decodes a .npy stream holding a little-endian float32 C-order array.
// Trailing bytes after the array data are ignored, as numpy does.
func Read(r io.Reader) (*tensor.Tensor, error) {
	shape, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	n := tensor.NumelOf(shape) // validated: no overflow, <= MaxElements
	data, err := readData(r, n, shape)
	if err != nil {
		return nil, err
	}
	return &tensor.Tensor{Shape: shape, Data: data}, nil
}

// ReadFile reads a .npy file; see Read.
func ReadFile(path string) (*tensor.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	t, err := Read(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return t, nil
}

// Write encodes t as a version 1.0 .npy stream ('<f4', fortran_order
// False), with the header padded as numpy pads it so the data starts at a
// multiple of 64 bytes. The output is byte-identical to numpy.save.
func Write(w io.Writer, t *tensor.Tensor) error {
	if t == nil {
		return errors.New("npy: nil tensor")
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %s", tensor.ShapeString(t.Shape))
		}
	}
	if n := tensor.NumelOf(t.Shape); n != len(t.Data) {
		return fmt.Errorf("npy: shape %s needs %d values, tensor has %d", tensor.ShapeString(t.Shape), n, len(t.Data))
	}
	if _, err := w.Write(header(t.Shape)); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	buf := make([]byte, 0, min(len(t.Data)*4, 1<<16))
	for i := 0; i < len(t.Data); {
		buf = buf[:0]
		for ; i < len(t.Data) && len(buf)+4 <= cap(buf); i++ {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(t.Data[i]))
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("npy: %w", err)
		}
	}
	return nil
}

// WriteFile writes t to path atomically; see Write.
func WriteFile(path string, t *tensor.Tensor) error {
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error { return Write(w, t) })
}

// pyShape formats a shape as Python's repr of a tuple: (), (5,), (2, 3).
func pyShape(shape []int) string {
	switch len(shape) {
	case 0:
		return "()"
	case 1:
		return "(" + strconv.Itoa(shape[0]) + ",)"
	}
	return tensor.ShapeString(shape)
}

// header returns the magic, version, header length and padded header dict,
// exactly as numpy.lib.format writes them.
func header(shape []int) []byte {
	var h bytes.Buffer
	h.WriteString("{'descr': '<f4', 'fortran_order': False, 'shape': ")
	h.WriteString(pyShape(shape))
	h.WriteString(", }")
	if len(shape) > 0 {
		pad := growthAxisMaxDigits - len(strconv.Itoa(shape[0]))
		h.Write(bytes.Repeat([]byte{' '}, max(pad, 0)))
	}
	hlen := h.Len() + 1 // the final newline
	var out []byte
	if pad := arrayAlign - (len(magic)+2+2+hlen)%arrayAlign; hlen+pad <= math.MaxUint16 {
		out = append(out, magic...)
		out = append(out, 1, 0)
		out = binary.LittleEndian.AppendUint16(out, uint16(hlen+pad))
		out = append(out, h.Bytes()...)
		out = append(out, bytes.Repeat([]byte{' '}, pad)...)
	} else {
		pad := arrayAlign - (len(magic)+2+4+hlen)%arrayAlign
		out = append(out, magic...)
		out = append(out, 2, 0)
		out = binary.LittleEndian.AppendUint32(out, uint32(hlen+pad))
		out = append(out, h.Bytes()...)
		out = append(out, bytes.Repeat([]byte{' '}, pad)...)
	}
	return append(out, '\n')
}

// readHeader reads the preamble and header dict and returns the validated
// shape of a '<f4' C-order array.
func readHeader(r io.Reader) ([]int, error) {
	var pre [8]byte
	n, err := io.ReadFull(r, pre[:])
	m := min(n, len(magic))
	switch {
	case n == 0:
		return nil, errors.New("npy: empty input, not an .npy file")
	case string(pre[:m]) != magic[:m]:
		return nil, errors.New("npy: bad magic, not an .npy file")
	case err != nil:
		return nil, errors.New("npy: truncated header")
	}
	major, minor := pre[6], pre[7]
	var hlen uint64
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, errors.New("npy: truncated header")
		}
		hlen = uint64(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, errors.New("npy: truncated header")
		}
		hlen = uint64(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d", major, minor)
	}
	if minor != 0 {
		return nil, fmt.Errorf("npy: unsupported format version %d.%d", major, minor)
	}
	if hlen > MaxHeaderLen {
		return nil, fmt.Errorf("npy: header length %d exceeds the limit of %d bytes", hlen, MaxHeaderLen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("npy: truncated header (want %d bytes)", hlen)
	}
	return parseHeader(hdr)
}

// parseHeader validates a header dict and returns the shape.
func parseHeader(hdr []byte) ([]int, error) {
	p := &parser{s: hdr}
	v, err := p.value(0)
	if err != nil {
		return nil, fmt.Errorf("npy: bad header: %v", err)
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("npy: bad header: unexpected %q after the dict", p.rest())
	}
	d, ok := v.(pyDict)
	if !ok {
		return nil, errors.New("npy: bad header: not a dict")
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if _, ok := d[k]; !ok {
			return nil, fmt.Errorf("npy: bad header: missing key '%s'", k)
		}
	}
	if len(d) != 3 {
		for k := range d {
			if k != "descr" && k != "fortran_order" && k != "shape" {
				return nil, fmt.Errorf("npy: bad header: unexpected key '%s'", k)
			}
		}
	}
	descr, ok := d["descr"].(string)
	if !ok {
		return nil, errors.New("npy: dtype is structured or not a string, not float32 (convert with arr.astype(np.float32))")
	}
	switch descr {
	case "<f4":
	case ">f4":
		return nil, errors.New("npy: dtype '>f4' is big-endian, only little-endian float32 is supported (convert with arr.astype('<f4'))")
	default:
		if len(descr) > 0 && descr[0] == '>' {
			return nil, fmt.Errorf("npy: dtype '%s' is big-endian and not float32 (convert with arr.astype('<f4'))", descr)
		}
		return nil, fmt.Errorf("npy: dtype '%s' is not float32 (convert with arr.astype(np.float32))", descr)
	}
	fo, ok := d["fortran_order"].(bool)
	if !ok {
		return nil, errors.New("npy: bad header: fortran_order is not True or False")
	}
	if fo {
		return nil, errors.New("npy: fortran order unsupported (save np.ascontiguousarray(arr) instead)")
	}
	tup, ok := d["shape"].(pyTuple)
	if !ok {
		return nil, errors.New("npy: bad header: shape is not a tuple")
	}
	// The product of the non-zero dimensions is capped too, so that a
	// zero dimension cannot hide an overflowing shape.
	shape := make([]int, len(tup))
	total := uint64(1)
	for i, e := range tup {
		bi, ok := e.(pyInt)
		if !ok {
			return nil, errors.New("npy: bad header: shape holds a non-integer")
		}
		if bi.neg && (bi.v != 0 || bi.overflow) {
			return nil, fmt.Errorf("npy: negative dimension in shape %s", pyTupleString(tup))
		}
		if bi.overflow || bi.v > MaxElements {
			return nil, fmt.Errorf("npy: dimension %d of shape %s overflows", i, pyTupleString(tup))
		}
		shape[i] = int(bi.v)
		if bi.v != 0 {
			total *= bi.v // both factors <= 2^31: no uint64 overflow
			if total > MaxElements {
				return nil, fmt.Errorf("npy: too many elements in shape %s (limit %d)", pyTupleString(tup), MaxElements)
			}
		}
	}
	return shape, nil
}

// readData reads n little-endian float32 values, in chunks so memory grows
// only with the bytes actually present.
func readData(r io.Reader, n int, shape []int) ([]float32, error) {
	need := int64(n) * 4
	if n*4 <= chunkBytes {
		buf := make([]byte, n*4)
		got, err := io.ReadFull(r, buf)
		if err != nil {
			return nil, shortData(int64(got), need, shape, err)
		}
		data := make([]float32, n)
		decode(data, buf)
		return data, nil
	}
	data := make([]float32, 0, chunkBytes/4)
	buf := make([]byte, chunkBytes)
	var have int64
	for len(data) < n {
		k := min(n-len(data), chunkBytes/4)
		got, err := io.ReadFull(r, buf[:k*4])
		have += int64(got)
		if err != nil {
			return nil, shortData(have, need, shape, err)
		}
		start := len(data)
		data = append(data, make([]float32, k)...)
		decode(data[start:], buf[:k*4])
	}
	return data, nil
}

func shortData(have, need int64, shape []int, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("npy: data has %d bytes, shape %s needs %d", have, tensor.ShapeString(shape), need)
	}
	return fmt.Errorf("npy: reading data: %w", err)
}

func decode(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}
