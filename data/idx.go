package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// IDX is a parsed IDX file (the MNIST / Fashion-MNIST format) of unsigned
// bytes: Data holds prod(Dims) values in row-major order.
type IDX struct {
	Dims []int
	Data []byte
}

// MaxIDXBytes bounds the payload ReadIDX accepts (a header can claim up to
// 2^32^n bytes; no real IDX file is anywhere near this).
const MaxIDXBytes = 1 << 32

// ErrIDX is matched (errors.Is) by every format error ReadIDX returns.
var ErrIDX = errors.New("bad IDX file")

var idxTypeNames = map[byte]string{
	0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64",
}

func idxErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrIDX}, args...)...)
}

// ReadIDX parses an IDX file, raw or gzip-compressed (detected from the
// first bytes). It accepts only the unsigned-byte element type, checks the
// magic number, that every dimension fits, and that the payload has exactly
// the size the header claims: a truncated file or trailing data is an
// error. Memory grows with the data actually read, not with the header's
// claim, so a forged header cannot make it allocate gigabytes.
func ReadIDX(r io.Reader) (*IDX, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: corrupt gzip header: %v", ErrIDX, err)
		}
		defer gz.Close()
		return readIDX(gz, true)
	}
	return readIDX(br, false)
}

func readIDX(r io.Reader, gz bool) (*IDX, error) {
	wrap := func(err error, what string) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if gz {
				return idxErr("truncated %s (the gzip stream ends early)", what)
			}
			return idxErr("truncated %s", what)
		}
		if gz {
			return idxErr("corrupt gzip data in %s: %v", what, err)
		}
		return fmt.Errorf("reading IDX %s: %w", what, err)
	}
	var hdr [4]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, idxErr("empty file")
		}
		return nil, wrap(err, "header")
	}
	magic := binary.BigEndian.Uint32(hdr[:])
	if hdr[0] != 0 || hdr[1] != 0 {
		return nil, idxErr("bad magic number 0x%08x (an IDX file starts with two zero bytes, a type code and the number of dimensions)", magic)
	}
	if hdr[2] != 0x08 {
		if name, ok := idxTypeNames[hdr[2]]; ok {
			return nil, idxErr("element type %s (magic 0x%08x) not supported, only unsigned byte", name, magic)
		}
		return nil, idxErr("bad magic number 0x%08x: unknown element type 0x%02x", magic, hdr[2])
	}
	nd := int(hdr[3])
	if nd == 0 {
		return nil, idxErr("magic 0x%08x says zero dimensions", magic)
	}
	dimBytes := make([]byte, 4*nd)
	if _, err := io.ReadFull(r, dimBytes); err != nil {
		return nil, wrap(err, fmt.Sprintf("header (%d dimensions)", nd))
	}
	dims := make([]int, nd)
	size := uint64(1)
	for i := range dims {
		d := binary.BigEndian.Uint32(dimBytes[4*i:])
		dims[i] = int(d)
		if d != 0 && size > MaxIDXBytes/uint64(d) {
			return nil, idxErr("dimensions %v hold more than %d bytes", dimsOf(dimBytes), uint64(MaxIDXBytes))
		}
		size *= uint64(d)
	}
	// Grow with the data actually present, starting from a modest buffer.
	var buf bytes.Buffer
	buf.Grow(int(min(size, 1<<16)) + 1)
	n, err := buf.ReadFrom(io.LimitReader(r, int64(size)+1))
	if err != nil {
		return nil, wrap(err, "data")
	}
	if uint64(n) < size {
		return nil, idxErr("truncated: dimensions %v need %d bytes of data, file has %d", dims, size, n)
	}
	if uint64(n) > size {
		return nil, idxErr("trailing data after the %d bytes dimensions %v need", size, dims)
	}
	return &IDX{Dims: dims, Data: buf.Bytes()[:size:size]}, nil
}

func dimsOf(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return out
}

// ReadIDXFile reads an IDX file (raw or gzip); errors name the file.
func ReadIDXFile(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x, err := ReadIDX(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return x, nil
}

// WriteIDX writes an unsigned-byte IDX file (uncompressed) with the given
// dimensions; len(data) must equal their product.
func WriteIDX(w io.Writer, dims []int, data []byte) error {
	if len(dims) == 0 || len(dims) > 255 {
		return fmt.Errorf("data: WriteIDX: %d dimensions", len(dims))
	}
	n := 1
	hdr := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		if d < 0 || uint64(d) > 0xffffffff {
			return fmt.Errorf("data: WriteIDX: dimension %d out of range", d)
		}
		n *= d
		hdr = binary.BigEndian.AppendUint32(hdr, uint32(d))
	}
	if n != len(data) {
		return fmt.Errorf("data: WriteIDX: dimensions %v need %d bytes, have %d", dims, n, len(data))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}
