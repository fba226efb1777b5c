package imageproc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// npyArray is a tiny local .npy (version 1/2/3, C order, little-endian
// float32 or uint8) reader, enough for the golden files.
type npyArray struct {
	Descr string
	Shape []int
	F32   []float32
	U8    []uint8
}

var (
	npyDescr = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	npyOrder = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	npyShape = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

func readNpy(path string) (*npyArray, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("%s: not a .npy file", path)
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, fmt.Errorf("%s: short header", path)
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, fmt.Errorf("%s: npy version %d", path, b[6])
	}
	if off+hlen > len(b) {
		return nil, fmt.Errorf("%s: short header", path)
	}
	hdr := string(b[off : off+hlen])
	data := b[off+hlen:]
	a := &npyArray{}
	m := npyDescr.FindStringSubmatch(hdr)
	if m == nil {
		return nil, fmt.Errorf("%s: no descr in %q", path, hdr)
	}
	a.Descr = m[1]
	if m := npyOrder.FindStringSubmatch(hdr); m == nil || m[1] != "False" {
		return nil, fmt.Errorf("%s: need C order: %q", path, hdr)
	}
	m = npyShape.FindStringSubmatch(hdr)
	if m == nil {
		return nil, fmt.Errorf("%s: no shape in %q", path, hdr)
	}
	n := 1
	for _, f := range strings.Split(m[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s: shape %q", path, m[1])
		}
		a.Shape = append(a.Shape, d)
		n *= d
	}
	switch a.Descr {
	case "<f4":
		if len(data) != 4*n {
			return nil, fmt.Errorf("%s: %d data bytes for %d float32", path, len(data), n)
		}
		a.F32 = make([]float32, n)
		for i := range a.F32 {
			a.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case "|u1":
		if len(data) != n {
			return nil, fmt.Errorf("%s: %d data bytes for %d uint8", path, len(data), n)
		}
		a.U8 = data
	default:
		return nil, fmt.Errorf("%s: unsupported dtype %s", path, a.Descr)
	}
	return a, nil
}

type goldenCase struct {
	Kind   string
	Image  string
	Format string
	S, C   int
	W, H   int
	Gray   bool
	Npy    string
}

func loadCases(t *testing.T) []goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []goldenCase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	return f.Cases
}

// isJPEG: Go's IDCT is not libjpeg's jpeg_idct_islow, so decoded samples
// may differ by a level or two; everything else must match PIL exactly.
func isJPEG(c goldenCase) bool { return c.Format == "JPEG" }

// Tolerances for JPEG inputs (decoder differences, not resampling).
const (
	jpegPixelTol = 3 // uint8 levels, decoded or resized
)

func TestGolden(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(strings.TrimSuffix(c.Npy, ".npy"), func(t *testing.T) {
			want, err := readNpy(filepath.Join("testdata/golden", c.Npy))
			if err != nil {
				t.Fatal(err)
			}
			img, err := DecodeFile(filepath.Join("testdata/images", c.Image), 0)
			if err != nil {
				t.Fatal(err)
			}
			switch c.Kind {
			case "resize":
				got := ToImage8(img, c.Gray).Resize(c.W, c.H)
				shape := []int{c.H, c.W, 3}
				if c.Gray {
					shape = shape[:2]
				}
				if fmt.Sprint(want.Shape) != fmt.Sprint(shape) {
					t.Fatalf("golden shape %v, want %v", want.Shape, shape)
				}
				maxd, nd := 0, 0
				for i, v := range want.U8 {
					d := int(got.Pix[i]) - int(v)
					if d < 0 {
						d = -d
					}
					if d > 0 {
						nd++
					}
					maxd = max(maxd, d)
				}
				tol := 0
				if isJPEG(c) {
					tol = jpegPixelTol
				}
				t.Logf("uint8 vs PIL: max |diff| %d, %d of %d values differ", maxd, nd, len(want.U8))
				if maxd > tol {
					t.Errorf("uint8 vs PIL: max |diff| %d > %d (%d of %d values differ)", maxd, tol, nd, len(want.U8))
				}
			case "pipeline":
				p := ImageNetParams(c.S)
				p.Crop, p.Gray = c.C, c.Gray
				got := Preprocess(img, p)
				if fmt.Sprint(want.Shape) != fmt.Sprint(got.Shape) {
					t.Fatalf("shape %v, torchvision %v", got.Shape, want.Shape)
				}
				maxd, exact := 0.0, 0
				for i, v := range want.F32 {
					d := math.Abs(float64(got.Data[i]) - float64(v))
					if d == 0 {
						exact++
					}
					maxd = max(maxd, d)
				}
				// One uint8 level after Normalize, plus float slack.
				tol := 1.0/255/0.225 + 1e-6
				if isJPEG(c) {
					tol = jpegPixelTol/255.0/0.225 + 1e-6
				}
				t.Logf("vs torchvision: max |diff| %.3g (= %.2f levels), %d of %d bit-identical", maxd, maxd*255*0.229, exact, len(want.F32))
				if maxd > tol {
					t.Errorf("vs torchvision: max |diff| %.4g > %.4g", maxd, tol)
				}
				if !isJPEG(c) && exact != len(want.F32) {
					t.Errorf("only %d of %d values bit-identical to torchvision", exact, len(want.F32))
				}
			default:
				t.Fatalf("unknown kind %q", c.Kind)
			}
		})
	}
}

// TestGoldenImagesDecodeLikePIL checks the decoders agree on bytes via
// Decode (reader path, not file path).
func TestDecodeReaderMatchesFile(t *testing.T) {
	b, err := os.ReadFile("testdata/images/rgb300x200.png")
	if err != nil {
		t.Fatal(err)
	}
	img, format, err := Decode(bytes.NewReader(b), 0)
	if err != nil || format != "png" {
		t.Fatal(format, err)
	}
	if img.Bounds().Dx() != 300 || img.Bounds().Dy() != 200 {
		t.Fatal(img.Bounds())
	}
}
