package pth

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/tensor"
	"github.com/nlpodyssey/gopickle/types"
)

// Limits applied while loading. They bound memory use on hostile input and
// are far above what any real state_dict needs.
const (
	// MaxStorageBytes caps the size of one storage entry (data/<key>).
	MaxStorageBytes = 4 << 30
	// MaxPickleBytes caps the size of data.pkl.
	MaxPickleBytes = 64 << 20
	// MaxTensorElements caps the element count of one materialised tensor.
	MaxTensorElements = 1 << 30
	// maxDims caps the rank of a tensor.
	maxDims = 64
	// maxDeflateRatio bounds uncompressed/compressed size of deflated
	// entries (deflate cannot exceed ~1032:1), so a zip bomb's declared
	// size cannot make us allocate more than the file justifies.
	maxDeflateRatio = 1100
)

// legacyMagic starts every legacy (torch < 1.6) torch.save file: pickle
// protocol 2, LONG1 of 10 bytes holding 0x1950a86a20f9469cfc6c.
var legacyMagic = []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

// entry is one zip entry.
type entry struct {
	f *zip.File
}

// archive is an opened checkpoint.
type archive struct {
	r        io.ReaderAt
	size     int64
	prefix   string // e.g. "archive/", including the slash ("" if none)
	entries  map[string]*entry
	storages map[string]*storageRef
}

// LoadFile reads the torch.save checkpoint at path; see Load.
func LoadFile(path string) (map[string]*tensor.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pth: %w", err)
	}
	return Load(f, fi.Size())
}

// Load reads a torch.save zip archive (torch >= 1.6) holding a state_dict
// and returns its tensors by key, converted to dense row-major float32.
//
// The top-level object must be a dict (or OrderedDict) of tensors, or a
// dict wrapping one under "state_dict", "model" or "state_dict_ema" (tried
// in that order), as training scripts commonly save. Keys are returned
// exactly as stored. Supported dtypes are float32, float16, bfloat16,
// float64, int64, int32, int16, int8, uint8 and bool; integer scalars such
// as num_batches_tracked come back with shape ().
//
// Load never executes anything the file names; see the package
// documentation for the allow-list and limits. All errors start with "pth: ".
func Load(r io.ReaderAt, size int64) (map[string]*tensor.Tensor, error) {
	sd, _, err := LoadWithMetadata(r, size)
	return sd, err
}

// LoadWithMetadata is Load that also returns the string metadata a file
// written by SaveWithMetadata carries (nil for any other torch.save file).
// Metadata that is not a JSON object of strings, or is larger than
// MaxMetadataBytes, is an error.
func LoadWithMetadata(r io.ReaderAt, size int64) (map[string]*tensor.Tensor, map[string]string, error) {
	a, err := open(r, size)
	if err != nil {
		return nil, nil, err
	}
	sd, err := a.load()
	if err != nil {
		return nil, nil, err
	}
	e, ok := a.entries[a.prefix+MetadataEntry]
	if !ok {
		return sd, nil, nil
	}
	b, err := a.readEntry(e, MaxMetadataBytes)
	if err != nil {
		return nil, nil, err
	}
	var meta map[string]string
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, nil, fmt.Errorf("pth: entry %q is not a JSON object of strings: %v", MetadataEntry, err)
	}
	return sd, meta, nil
}

func open(r io.ReaderAt, size int64) (*archive, error) {
	if size < 0 {
		return nil, errors.New("pth: negative size")
	}
	var head [14]byte
	n, _ := r.ReadAt(head[:min(int64(len(head)), size)], 0)
	if bytes.HasPrefix(head[:n], legacyMagic) {
		return nil, errors.New("pth: legacy torch.save format (torch < 1.6, not a zip archive); re-save it with a newer torch: torch.save(torch.load(path), new_path)")
	}
	if n >= 2 && head[0] == 0x80 && head[1] <= 5 {
		return nil, errors.New("pth: file is a bare pickle, not a torch.save zip archive (legacy torch < 1.6 format?); re-save it with a newer torch")
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("pth: not a zip archive or truncated (%v)", err)
	}
	return openArchive(zr, r, size)
}

func openArchive(zr *zip.Reader, r io.ReaderAt, size int64) (*archive, error) {
	a := &archive{r: r, size: size, entries: make(map[string]*entry, len(zr.File)), storages: map[string]*storageRef{}}
	var pkls []string
	for _, f := range zr.File {
		if _, dup := a.entries[f.Name]; dup {
			return nil, fmt.Errorf("pth: zip archive has duplicate entry %q", f.Name)
		}
		a.entries[f.Name] = &entry{f: f}
		if f.Name == "data.pkl" || strings.HasSuffix(f.Name, "/data.pkl") {
			pkls = append(pkls, f.Name)
		}
	}
	if len(pkls) == 0 {
		return nil, errors.New("pth: zip archive has no data.pkl entry (not a torch.save checkpoint)")
	}
	// The real one is the shallowest (torch writes <prefix>/data.pkl).
	sort.Slice(pkls, func(i, j int) bool {
		di, dj := strings.Count(pkls[i], "/"), strings.Count(pkls[j], "/")
		if di != dj {
			return di < dj
		}
		return pkls[i] < pkls[j]
	})
	if len(pkls) > 1 && strings.Count(pkls[0], "/") == strings.Count(pkls[1], "/") {
		return nil, fmt.Errorf("pth: zip archive has several data.pkl entries (%q, %q)", pkls[0], pkls[1])
	}
	a.prefix = strings.TrimSuffix(pkls[0], "data.pkl")
	if _, ok := a.entries[a.prefix+"constants.pkl"]; ok {
		return nil, errors.New("pth: this is a TorchScript archive (torch.jit.save), not a torch.save state_dict; in Python: torch.save(torch.jit.load(path).state_dict(), new_path)")
	}
	if e, ok := a.entries[a.prefix+"byteorder"]; ok {
		b, err := a.readEntry(e, 16)
		if err != nil {
			return nil, err
		}
		switch strings.TrimSpace(string(b)) {
		case "little":
		case "big":
			return nil, errors.New("pth: big-endian checkpoint (byteorder \"big\") is not supported; re-save it on a little-endian machine")
		default:
			return nil, fmt.Errorf("pth: unknown byteorder %q", b)
		}
	}
	return a, nil
}

// checkEntry verifies that e declares exactly want uncompressed bytes and
// that reading it cannot allocate more than the file justifies.
func (a *archive) checkEntry(e *entry, want uint64) error {
	f := e.f
	if f.UncompressedSize64 != want {
		return fmt.Errorf("pth: storage entry %q holds %d bytes, but data.pkl says %d", strings.TrimPrefix(f.Name, a.prefix), f.UncompressedSize64, want)
	}
	if want > MaxStorageBytes {
		return fmt.Errorf("pth: entry %q is larger than %d bytes", f.Name, int64(MaxStorageBytes))
	}
	switch f.Method {
	case zip.Store:
		if f.CompressedSize64 != f.UncompressedSize64 {
			return fmt.Errorf("pth: stored entry %q has inconsistent sizes", f.Name)
		}
	case zip.Deflate:
		if f.UncompressedSize64 > 64 && f.UncompressedSize64/maxDeflateRatio > f.CompressedSize64 {
			return fmt.Errorf("pth: entry %q claims an impossible compression ratio", f.Name)
		}
	default:
		return fmt.Errorf("pth: entry %q uses unsupported zip method %d", f.Name, f.Method)
	}
	off, err := f.DataOffset()
	if err != nil {
		return fmt.Errorf("pth: entry %q: %v", f.Name, err)
	}
	if off < 0 || f.CompressedSize64 > uint64(a.size) || uint64(off) > uint64(a.size)-f.CompressedSize64 {
		return fmt.Errorf("pth: entry %q runs past the end of the file (truncated?)", f.Name)
	}
	return nil
}

// readEntry reads all of e, which may be at most limit bytes, checking its CRC.
func (a *archive) readEntry(e *entry, limit uint64) ([]byte, error) {
	f := e.f
	if f.UncompressedSize64 > limit {
		return nil, fmt.Errorf("pth: entry %q is %d bytes, over the %d-byte limit", f.Name, f.UncompressedSize64, limit)
	}
	if err := a.checkEntry(e, f.UncompressedSize64); err != nil {
		return nil, err
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("pth: entry %q: %v", f.Name, err)
	}
	defer rc.Close()
	buf := make([]byte, f.UncompressedSize64)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("pth: entry %q is truncated or corrupt (%v)", f.Name, err)
	}
	// Reading to EOF makes archive/zip verify the CRC and the declared size.
	if _, err := io.CopyN(io.Discard, rc, 1); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("pth: entry %q is longer than declared", f.Name)
		}
		return nil, fmt.Errorf("pth: entry %q is corrupt (%v)", f.Name, err)
	}
	if f.Method == zip.Store && f.CRC32 != 0 && crc32.ChecksumIEEE(buf) != f.CRC32 {
		return nil, fmt.Errorf("pth: entry %q is corrupt (checksum mismatch)", f.Name)
	}
	return buf, nil
}

func (a *archive) load() (map[string]*tensor.Tensor, error) {
	pkl, err := a.readEntry(a.entries[a.prefix+"data.pkl"], MaxPickleBytes)
	if err != nil {
		return nil, err
	}
	obj, err := a.unpickle(pkl)
	if err != nil {
		return nil, err
	}
	keys, refs, err := selectStateDict(obj)
	if err != nil {
		return nil, err
	}
	return a.materialize(keys, refs)
}

// dictItems lists the items of a dict or OrderedDict in order; ok is false
// for other values.
func dictItems(v interface{}) (keys []interface{}, vals []interface{}, ok bool) {
	switch d := v.(type) {
	case *types.Dict:
		for _, e := range *d {
			keys = append(keys, e.Key)
			vals = append(vals, e.Value)
		}
		return keys, vals, true
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e, ok := el.Value.(*types.OrderedDictEntry)
			if !ok {
				return nil, nil, false
			}
			keys = append(keys, e.Key)
			vals = append(vals, e.Value)
		}
		return keys, vals, true
	}
	return nil, nil, false
}

// tensorDict checks that v is a dict of str -> tensor; where names the dict
// in errors. Later duplicates of a key win, as in Python.
func tensorDict(v interface{}, where string) ([]string, map[string]*tensorRef, error) {
	ks, vs, ok := dictItems(v)
	if !ok {
		return nil, nil, fmt.Errorf("pth: %s is %s, not a dict of tensors", where, pyType(v))
	}
	var keys []string
	refs := make(map[string]*tensorRef, len(ks))
	for i, k := range ks {
		s, ok := k.(string)
		if !ok {
			return nil, nil, fmt.Errorf("pth: %s has a key of type %s, not str", where, pyType(k))
		}
		t, ok := vs[i].(*tensorRef)
		if !ok {
			return nil, nil, fmt.Errorf("pth: %s entry %q is %s, not a tensor", where, s, pyType(vs[i]))
		}
		if _, dup := refs[s]; !dup {
			keys = append(keys, s)
		}
		refs[s] = t
	}
	return keys, refs, nil
}

// wrapperKeys are the entries checked, in order, for a state_dict wrapped
// in a training checkpoint.
var wrapperKeys = []string{"state_dict", "model", "state_dict_ema"}

// selectStateDict finds the state_dict in the unpickled object.
func selectStateDict(obj interface{}) ([]string, map[string]*tensorRef, error) {
	ks, vs, ok := dictItems(obj)
	if !ok {
		return nil, nil, fmt.Errorf("pth: checkpoint holds %s, not a state_dict", pyType(obj))
	}
	var firstErr error
	for _, w := range wrapperKeys {
		for i, k := range ks {
			if s, ok := k.(string); !ok || s != w {
				continue
			}
			if _, _, isDict := dictItems(vs[i]); !isDict {
				continue
			}
			keys, refs, err := tensorDict(vs[i], fmt.Sprintf("checkpoint[%q]", w))
			if err == nil {
				return keys, refs, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	keys, refs, err := tensorDict(obj, "state_dict")
	if err != nil && firstErr != nil {
		return nil, nil, firstErr
	}
	return keys, refs, err
}

// view is a checked tensorRef ready to materialise.
type view struct {
	key   string
	ref   *tensorRef
	numel int
}

// checkView validates a tensor view against its storage and returns its
// element count.
func checkView(key string, t *tensorRef) (int, error) {
	if len(t.shape) != len(t.stride) || len(t.shape) > maxDims {
		return 0, fmt.Errorf("pth: tensor %q has a bad shape/stride", key)
	}
	numel := int64(1)
	for _, d := range t.shape {
		if d < 0 {
			return 0, fmt.Errorf("pth: tensor %q has negative size %s", key, shapeString(t.shape))
		}
		if d == 0 {
			numel = 0
			break
		}
		if numel > MaxTensorElements/int64(d) {
			return 0, fmt.Errorf("pth: tensor %q shape %s has more than %d elements", key, shapeString(t.shape), MaxTensorElements)
		}
		numel *= int64(d)
	}
	if numel == 0 {
		return 0, nil
	}
	// Highest element index the view touches; every term is bounded so
	// nothing overflows.
	last := int64(t.offset)
	if last < 0 || last >= t.st.numel {
		return 0, fmt.Errorf("pth: storage too short for tensor %q shape %s: offset %d, storage data/%s has %d elements", key, shapeString(t.shape), t.offset, t.st.key, t.st.numel)
	}
	for i, d := range t.shape {
		s := int64(t.stride[i])
		if s < 0 {
			return 0, fmt.Errorf("pth: tensor %q has negative stride", key)
		}
		if s > 0 && int64(d-1) > (t.st.numel-1-last)/s {
			return 0, fmt.Errorf("pth: storage too short for tensor %q shape %s stride %s offset %d: storage data/%s has %d elements", key, shapeString(t.shape), shapeString(t.stride), t.offset, t.st.key, t.st.numel)
		}
		last += int64(d-1) * s
	}
	return int(numel), nil
}

// materialize checks every view, then reads each storage once and copies
// its views out as dense float32 tensors.
func (a *archive) materialize(keys []string, refs map[string]*tensorRef) (map[string]*tensor.Tensor, error) {
	var views []view
	var outElems, storageElems int64
	seen := map[*storageRef]bool{}
	for _, k := range keys {
		t := refs[k]
		n, err := checkView(k, t)
		if err != nil {
			return nil, err
		}
		views = append(views, view{key: k, ref: t, numel: n})
		outElems += int64(n)
		if !seen[t.st] {
			seen[t.st] = true
			storageElems += t.st.numel
		}
	}
	// Stride-0 views could otherwise turn a tiny storage into a huge tensor.
	if outElems > 8*storageElems+1<<20 {
		return nil, fmt.Errorf("pth: tensors would materialise %d elements from storages holding %d; refusing", outElems, storageElems)
	}
	// Group by storage so only one raw storage is held at a time.
	sort.SliceStable(views, func(i, j int) bool { return views[i].ref.st.key < views[j].ref.st.key })
	out := make(map[string]*tensor.Tensor, len(views))
	var raw []byte
	var cur *storageRef
	for _, v := range views {
		t := v.ref
		if v.numel > 0 && t.st != cur {
			var err error
			raw = nil
			raw, err = a.readEntry(t.st.entry, uint64(t.st.numel)*uint64(t.st.dt.size))
			if err != nil {
				return nil, err
			}
			cur = t.st
		}
		data := make([]float32, v.numel)
		if v.numel > 0 {
			copyView(data, raw, t)
		}
		tt, err := tensor.FromData(data, t.shape...)
		if err != nil {
			return nil, fmt.Errorf("pth: tensor %q: %v", v.key, err)
		}
		out[v.key] = tt
	}
	return out, nil
}

// copyView materialises a checked view from raw storage bytes into dst.
func copyView(dst []float32, raw []byte, t *tensorRef) {
	dt := t.st.dt
	nd := len(t.shape)
	if nd == 0 {
		dst[0] = dt.at(raw, t.offset)
		return
	}
	// Innermost dimension contiguous: decode runs.
	inner := t.shape[nd-1]
	idx := make([]int, nd-1)
	base := t.offset
	for o := 0; o < len(dst); o += inner {
		run := dst[o : o+inner]
		if t.stride[nd-1] == 1 {
			dt.decode(run, raw, base)
		} else {
			s := t.stride[nd-1]
			for i := range run {
				run[i] = dt.at(raw, base+i*s)
			}
		}
		// Advance the outer index like an odometer.
		for d := nd - 2; d >= 0; d-- {
			idx[d]++
			base += t.stride[d]
			if idx[d] < t.shape[d] {
				break
			}
			base -= idx[d] * t.stride[d]
			idx[d] = 0
		}
	}
}
