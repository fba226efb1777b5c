package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"strconv"

	// Registered decoders.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// DefaultMaxPixels is the pixel limit Decode uses when given maxPixels <= 0.
const DefaultMaxPixels = 50_000_000

var (
	// ErrTooLarge is matched (errors.Is) by a *TooLargeError.
	ErrTooLarge = errors.New("image too large")
	// ErrNotImage is returned (wrapped) for data no registered decoder
	// recognises.
	ErrNotImage = errors.New("not an image (or an unsupported format)")
	// ErrEmpty is returned (wrapped) for a zero-width or zero-height image.
	ErrEmpty = errors.New("zero-size image")
)

// TooLargeError reports an image whose header claims more pixels than the
// limit; it is returned before any pixel memory is allocated.
type TooLargeError struct {
	Format        string
	Width, Height int
	MaxPixels     int
}

func (e *TooLargeError) Error() string {
	mp := float64(e.Width) * float64(e.Height) / 1e6
	return fmt.Sprintf("%s image is %dx%d = %.1f MP, over the %s MP limit", e.Format, e.Width, e.Height, mp,
		strconv.FormatFloat(float64(e.MaxPixels)/1e6, 'f', -1, 64))
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Decode reads one image (PNG, JPEG, GIF (first frame), WebP, BMP or TIFF)
// and returns it with its format name. The header is read first with
// image.DecodeConfig, and an image with width*height > maxPixels (or
// DefaultMaxPixels if maxPixels <= 0) is rejected with a *TooLargeError
// before its pixels are decoded. Only the bytes consumed by the header check
// are buffered; the rest is streamed to the decoder.
//
// Lossy WebP is returned as an *image.NRGBA converted with libwebp's
// (limited-range BT.601) arithmetic, not Go's full-range YCbCr model; see
// webp.go. EXIF orientation is not applied (neither does PIL's Image.open).
func Decode(r io.Reader, maxPixels int) (img image.Image, format string, err error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	var head bytes.Buffer
	cfg, format, err := image.DecodeConfig(io.TeeReader(r, &head))
	if err != nil {
		switch {
		case errors.Is(err, image.ErrFormat):
			if head.Len() == 0 {
				return nil, "", fmt.Errorf("%w: empty input", ErrNotImage)
			}
			return nil, "", fmt.Errorf("%w: unrecognised header %q", ErrNotImage, preview(head.Bytes()))
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, format, fmt.Errorf("truncated %s header: %w", format, err)
		}
		return nil, format, fmt.Errorf("bad %s header: %w", format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, format, fmt.Errorf("%w: %s header says %dx%d", ErrEmpty, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels) {
		return nil, format, &TooLargeError{Format: format, Width: cfg.Width, Height: cfg.Height, MaxPixels: maxPixels}
	}
	defer func() {
		// The decoders are not supposed to panic on bad data, but a
		// service should not die if one does.
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("corrupt %s image (decoder panicked: %v)", format, p)
		}
	}()
	img, format2, err := image.Decode(io.MultiReader(bytes.NewReader(head.Bytes()), r))
	if err != nil {
		what := "corrupt or truncated"
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			what = "truncated"
		}
		return nil, format, fmt.Errorf("%s %s image (%dx%d): %w", what, format, cfg.Width, cfg.Height, err)
	}
	if format == "webp" {
		img = fixWebP(img)
	}
	if format2 != format {
		return nil, format, fmt.Errorf("format changed between header and decode (%s vs %s)", format, format2)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		if b.Empty() {
			return nil, format, fmt.Errorf("%w: decoded %s image is %dx%d", ErrEmpty, format, b.Dx(), b.Dy())
		}
		if int64(b.Dx())*int64(b.Dy()) > int64(maxPixels) {
			return nil, format, &TooLargeError{Format: format, Width: b.Dx(), Height: b.Dy(), MaxPixels: maxPixels}
		}
	}
	return img, format, nil
}

func preview(b []byte) []byte {
	if len(b) > 16 {
		b = b[:16]
	}
	return b
}

// DecodeFile opens and decodes path with Decode; errors name the file.
func DecodeFile(path string, maxPixels int) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	defer f.Close()
	img, _, err := Decode(f, maxPixels)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}
