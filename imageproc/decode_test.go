package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pngHeader returns a PNG signature + IHDR claiming w×h RGB8, with a
// valid CRC, and an optional tail.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeBadInput(t *testing.T) {
	pngData := mustRead(t, "testdata/images/rgb300x200.png")
	jpgData := mustRead(t, "testdata/images/q90_420_161x121.jpg")
	rnd := make([]byte, 4096)
	rand.New(rand.NewSource(1)).Read(rnd)
	// A JPEG whose SOF claims 60000x60000.
	bigJPEG := append([]byte(nil), jpgData...)
	if i := bytes.Index(bigJPEG, []byte{0xff, 0xc0}); i < 0 {
		t.Fatal("no SOF0")
	} else {
		binary.BigEndian.PutUint16(bigJPEG[i+5:], 60000)
		binary.BigEndian.PutUint16(bigJPEG[i+7:], 60000)
	}
	// GIF with a 0x0 logical screen and no frames.
	zeroGIF := []byte("GIF89a\x00\x00\x00\x00\x00\x00\x00;")

	tests := []struct {
		name    string
		data    []byte
		is      error  // errors.Is target, if any
		contain string // substring of the message
	}{
		{"empty", nil, ErrNotImage, "empty input"},
		{"random bytes", rnd, ErrNotImage, "not an image (or an unsupported format)"},
		{"text", []byte("hello, world\n"), ErrNotImage, "unrecognised header"},
		{"truncated png header", pngData[:20], nil, "truncated png header"},
		{"truncated png", pngData[:len(pngData)/2], nil, "truncated png image (300x200)"},
		{"png without IEND", pngData[:len(pngData)-12], nil, "png image"},
		{"truncated jpeg", jpgData[:len(jpgData)/2], nil, "jpeg image (161x121)"},
		{"jpeg header only", jpgData[:200], nil, "jpeg"},
		{"huge png", pngHeader(100000, 100000), ErrTooLarge, "png image is 100000x100000 = 10000.0 MP, over the 50 MP limit"},
		{"huge jpeg", bigJPEG, ErrTooLarge, "60000x60000 = 3600.0 MP"},
		{"zero-width png", pngHeader(0, 10), nil, "png"},
		{"zero-size gif", zeroGIF, ErrEmpty, "0x0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, _, err := Decode(bytes.NewReader(tc.data), 0)
			if err == nil {
				t.Fatalf("no error, got %T %v", img, img.Bounds())
			}
			if img != nil {
				t.Errorf("image returned with error %v", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.contain) {
				t.Errorf("error %q does not contain %q", err, tc.contain)
			}
			t.Log(err)
		})
	}
}

func TestDecodeTooLargeDoesNotAllocate(t *testing.T) {
	data := append(pngHeader(100000, 100000), make([]byte, 64)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := Decode(bytes.NewReader(data), 50_000_000)
	runtime.ReadMemStats(&after)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Width != 100000 || tl.Height != 100000 {
		t.Fatalf("err = %v", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Errorf("allocated %d bytes rejecting a 10 GP header", d)
	}
}

func TestDecodeLimit(t *testing.T) {
	data := mustRead(t, "testdata/images/rgb300x200.png")
	if _, _, err := Decode(bytes.NewReader(data), 300*200); err != nil {
		t.Errorf("exactly at the limit: %v", err)
	}
	_, _, err := Decode(bytes.NewReader(data), 300*200-1)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "300x200 = 0.1 MP, over the 0.059999 MP limit") {
		t.Errorf("err = %v", err)
	}
}

func TestDecodeFileErrorsNameFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.png")
	if err := os.WriteFile(bad, []byte("nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bad, filepath.Join(dir, "missing.jpg")} {
		if _, err := DecodeFile(p, 0); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("DecodeFile(%s) error %v does not name the file", p, err)
		}
	}
}

func TestDecodeFormats(t *testing.T) {
	// Every registered format round-trips through Decode.
	want := map[string]string{
		"rgb300x200.png": "png", "pal120x90.gif": "gif", "rgb77x101.bmp": "bmp",
		"q90_444_160x120.jpg": "jpeg", "q80_143x99.webp": "webp", "lossless50x40.webp": "webp",
	}
	for name, f := range want {
		_, format, err := Decode(bytes.NewReader(mustRead(t, "testdata/images/"+name)), 0)
		if err != nil || format != f {
			t.Errorf("%s: format %q err %v", name, format, err)
		}
	}
}

func TestConversions(t *testing.T) {
	// Alpha is dropped, not premultiplied (PIL RGBA -> RGB).
	n := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	n.SetNRGBA(0, 0, color.NRGBA{200, 100, 50, 0})
	if got := ToImage8(n, false).Pix; !bytes.Equal(got, []byte{200, 100, 50}) {
		t.Errorf("NRGBA: %v", got)
	}
	// PIL convert('L') weights.
	if got := ToImage8(n, true).Pix; got[0] != uint8((200*19595+100*38470+50*7471+0x8000)>>16) {
		t.Errorf("L: %v", got)
	}
	// CMYK like PIL's cmyk2rgb (value checked with PIL 9.4).
	c := image.NewCMYK(image.Rect(0, 0, 1, 1))
	c.SetCMYK(0, 0, color.CMYK{10, 128, 255, 40})
	if got := ToImage8(c, false).Pix; !bytes.Equal(got, []byte{207, 107, 0}) {
		t.Errorf("CMYK: %v", got)
	}
	// 16-bit: high byte.
	g := image.NewGray16(image.Rect(0, 0, 1, 1))
	g.SetGray16(0, 0, color.Gray16{0x12ff})
	if got := ToImage8(g, false).Pix; !bytes.Equal(got, []byte{0x12, 0x12, 0x12}) {
		t.Errorf("Gray16: %v", got)
	}
	// A sub-image keeps its own origin.
	src := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	src.SetNRGBA(2, 3, color.NRGBA{1, 2, 3, 255})
	sub := src.SubImage(image.Rect(2, 3, 4, 4))
	if got := ToImage8(sub, false); got.Width != 2 || got.Height != 1 || !bytes.Equal(got.Pix[:3], []byte{1, 2, 3}) {
		t.Errorf("sub-image: %+v", got)
	}
	// 16-bit PNG round trip through the decoder.
	var buf bytes.Buffer
	m := image.NewNRGBA64(image.Rect(0, 0, 2, 1))
	m.SetNRGBA64(1, 0, color.NRGBA64{0xabcd, 0x1234, 0xff00, 0x8000})
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	img, _, err := Decode(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ToImage8(img, false).Pix; !bytes.Equal(got[3:], []byte{0xab, 0x12, 0xff}) {
		t.Errorf("NRGBA64 png: %v", got)
	}
}

func TestCenterCropOrigin(t *testing.T) {
	for _, tc := range []struct{ w, h, c, left, top int }{
		{108, 72, 64, 22, 4},
		{97, 65, 64, 16, 0}, // 16.5 -> 16, 0.5 -> 0 (Python rounds half to even)
		{99, 67, 64, 18, 2}, // 17.5 -> 18, 1.5 -> 2
		{50, 64, 64, -7, 0}, // zero padding (64-50)//2 = 7
		{51, 65, 64, -6, 0},
		{10, 20, 64, -27, -22},
	} {
		if l, tp := CenterCropOrigin(tc.w, tc.h, tc.c); l != tc.left || tp != tc.top {
			t.Errorf("CenterCropOrigin(%d, %d, %d) = %d, %d, want %d, %d", tc.w, tc.h, tc.c, l, tp, tc.left, tc.top)
		}
	}
}

func TestResizedShortSize(t *testing.T) {
	for _, tc := range []struct{ w, h, s, ww, wh int }{
		{300, 200, 72, 108, 72},
		{199, 257, 72, 72, 92},
		{640, 480, 256, 341, 256},
		{4000, 3000, 248, 330, 248},
		{500, 500, 256, 256, 256},
	} {
		if w, h := ResizedShortSize(tc.w, tc.h, tc.s); w != tc.ww || h != tc.wh {
			t.Errorf("ResizedShortSize(%d, %d, %d) = %d, %d", tc.w, tc.h, tc.s, w, h)
		}
	}
}
