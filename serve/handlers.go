package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/tensor"
)

// classifyResponse is the answer of /classify.
type classifyResponse struct {
	Model   string           `json:"model"`
	Results []classifyResult `json:"results"`
	Timing  timing           `json:"timing"`
}

type classifyResult struct {
	File   string       `json:"file,omitempty"` // multipart file name
	Top    []prediction `json:"top"`
	Logits floats32     `json:"logits,omitempty"`
}

type prediction struct {
	Index int       `json:"index"`
	Label string    `json:"label"`
	Prob  float64js `json:"prob"`
	Logit float32js `json:"logit"`
}

// logitsResponse is the JSON answer of /logits.
type logitsResponse struct {
	Model  string     `json:"model"`
	Shape  [2]int     `json:"shape"`
	Logits []floats32 `json:"logits"`
	Timing timing     `json:"timing"`
}

// timing tells where a request's time went.
type timing struct {
	DecodeMS    float64 `json:"decode_ms"`    // reading the body, decoding, preprocessing
	QueueMS     float64 `json:"queue_ms"`     // waiting for a batch (the longest of its images)
	InferenceMS float64 `json:"inference_ms"` // the run of the (last) batch
	TotalMS     float64 `json:"total_ms"`     // from the headers to the answer
	BatchSizes  []int   `json:"batch_sizes"`  // of the batch each image ran in
}

// float32js and float64js encode non-finite values as null (JSON has no
// NaN or infinity); floats32 is a []float32 of them.
type (
	float32js float32
	float64js float64
	floats32  []float32
)

func (f float32js) MarshalJSON() ([]byte, error) { return appendFloat(nil, float64(f), 32), nil }
func (f float64js) MarshalJSON() ([]byte, error) { return appendFloat(nil, float64(f), 64), nil }

func (v floats32) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+12*len(v))
	b = append(b, '[')
	for i, f := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFloat(b, float64(f), 32)
	}
	return append(b, ']'), nil
}

func appendFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// ticket is an admitted model request.
type ticket struct {
	s         *Server
	m         *served
	preparing bool
}

// admit counts a model request in flight, and as being prepared for its
// model's batcher, or refuses it when MaxInFlight are in flight; the caller
// calls done when it is finished.
func (s *Server) admit(m *served) (*ticket, *apiError) {
	if n := s.inFlight.Add(1); n > int64(s.opts.MaxInFlight) {
		s.inFlight.Add(-1)
		return nil, errorf(http.StatusServiceUnavailable, "%d requests in flight, the limit: retry later", s.opts.MaxInFlight)
	}
	m.b.preparing.Add(1)
	return &ticket{s: s, m: m, preparing: true}, nil
}

// prepared tells the batcher that the request is no longer on its way.
func (t *ticket) prepared() {
	if t.preparing {
		t.m.b.preparing.Add(-1)
		t.preparing = false
	}
}

func (t *ticket) done() {
	t.prepared()
	t.s.inFlight.Add(-1)
}

// run submits one job per input, waits for them and returns them with
// their logits, (len(inputs), classes) in one slice.
func (s *Server) run(ctx context.Context, t *ticket, inputs [][]float32) ([]*job, []float32, *apiError) {
	m := t.m
	req := newPending(ctx, len(inputs))
	jobs := make([]*job, len(inputs))
	outs := make([]float32, len(inputs)*m.b.out)
	for i, x := range inputs {
		jobs[i] = &job{x: x, out: outs[i*m.b.out : (i+1)*m.b.out], req: req}
	}
	err := m.b.submit(jobs)
	t.prepared() // the batcher need not wait for it any more
	switch {
	case errors.Is(err, errQueueFull):
		return nil, nil, errorf(http.StatusServiceUnavailable, "model %q: queue full (%d images waiting): retry later", m.Name, s.opts.QueueSize)
	case err != nil:
		return nil, nil, errorf(http.StatusServiceUnavailable, "server shutting down")
	}
	if err := req.wait(); err != nil {
		return nil, nil, s.waitError(err)
	}
	return jobs, outs, nil
}

func (s *Server) waitError(err error) *apiError {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, "no answer within the %v timeout (server overloaded): retry later", s.opts.Timeout)
	case errors.Is(err, context.Canceled):
		return errorf(statusClientClosed, "the client closed the request")
	case errors.Is(err, errShuttingDown):
		return errorf(http.StatusServiceUnavailable, "server shutting down")
	}
	return errorf(http.StatusInternalServerError, "%v", err)
}

func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	if s.opts.Timeout > 0 {
		return context.WithTimeout(r.Context(), s.opts.Timeout)
	}
	return context.WithCancel(r.Context())
}

func timingOf(t0 time.Time, decoded time.Duration, jobs []*job) timing {
	t := timing{DecodeMS: ms(decoded), BatchSizes: make([]int, len(jobs))}
	var last *job
	for i, j := range jobs {
		t.BatchSizes[i] = j.batchSize
		t.QueueMS = max(t.QueueMS, ms(j.started.Sub(j.queued)))
		if last == nil || j.started.After(last.started) {
			last = j
		}
	}
	t.InferenceMS = ms(last.inference)
	t.TotalMS = ms(time.Since(t0))
	return t
}

func serverTiming(h http.Header, t timing) {
	h.Set("Server-Timing", fmt.Sprintf("decode;dur=%.3f, queue;dur=%.3f, inference;dur=%.3f, total;dur=%.3f",
		t.DecodeMS, t.QueueMS, t.InferenceMS, t.TotalMS))
}

// checkQuery refuses query parameters other than those known, so that a
// misspelt option is not silently ignored.
func checkQuery(q url.Values, known ...string) *apiError {
	for k := range q {
		ok := false
		for _, n := range known {
			ok = ok || k == n
		}
		if !ok {
			if len(k) > 32 {
				k = k[:32] + "..."
			}
			return errorf(http.StatusBadRequest, "unknown query parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

func parseBool(q url.Values, key string) (bool, *apiError) {
	switch v := q.Get(key); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, errorf(http.StatusBadRequest, "%s=%.32q: want true or false", key, v)
	}
}

func (s *Server) handleClassify(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	m, e := s.model(r)
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	if e := checkQuery(q, "top", "logits"); e != nil {
		writeError(w, e)
		return
	}
	top := 5
	if v := q.Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, errorf(http.StatusBadRequest, "top=%.32q: want a whole number of classes, at least 1", v))
			return
		}
		top = min(n, m.b.out)
	}
	withLogits, e := parseBool(q, "logits")
	if e != nil {
		writeError(w, e)
		return
	}
	t, e := s.admit(m)
	if e != nil {
		writeError(w, e)
		return
	}
	defer t.done()
	ctx, cancel := s.requestContext(r)
	defer cancel()
	images, e := s.readImages(ctx, w, r, m)
	if e != nil {
		writeError(w, e)
		return
	}
	decoded := time.Since(t0)
	inputs := make([][]float32, len(images))
	for i, im := range images {
		inputs[i] = im.x
	}
	jobs, _, e := s.run(ctx, t, inputs)
	if e != nil {
		writeError(w, e)
		return
	}
	res := classifyResponse{Model: m.Name, Results: make([]classifyResult, len(jobs))}
	for i, j := range jobs {
		preds := mobileone.TopK(j.out, m.names, top)
		out := classifyResult{File: images[i].name, Top: make([]prediction, len(preds))}
		for k, p := range preds {
			out.Top[k] = prediction{Index: p.Index, Label: p.Label, Prob: float64js(p.Prob), Logit: float32js(p.Logit)}
		}
		if withLogits {
			out.Logits = j.out
		}
		res.Results[i] = out
	}
	res.Timing = timingOf(t0, decoded, jobs)
	serverTiming(w.Header(), res.Timing)
	s.met.images.WithLabelValues(m.Name, "classify").Add(float64(len(jobs)))
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleLogits(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	m, e := s.model(r)
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	if e := checkQuery(q, "format"); e != nil {
		writeError(w, e)
		return
	}
	asJSON := false
	switch f := q.Get("format"); f {
	case "npy":
	case "json":
		asJSON = true
	case "":
		asJSON = strings.Contains(r.Header.Get("Accept"), "application/json")
	default:
		writeError(w, errorf(http.StatusBadRequest, "format=%.32q: want npy or json", f))
		return
	}
	t, e := s.admit(m)
	if e != nil {
		writeError(w, e)
		return
	}
	defer t.done()
	ctx, cancel := s.requestContext(r)
	defer cancel()
	x, n, pooled, e := s.readTensor(w, r, m)
	if e != nil {
		writeError(w, e)
		return
	}
	decoded := time.Since(t0)
	per := m.b.per
	inputs := make([][]float32, n)
	for i := range inputs {
		inputs[i] = x[i*per : (i+1)*per]
	}
	jobs, logits, e := s.run(ctx, t, inputs)
	if e != nil {
		writeError(w, e)
		return
	}
	if pooled {
		m.putInput(x) // the batcher is done with it
	}
	tm := timingOf(t0, decoded, jobs)
	serverTiming(w.Header(), tm)
	s.met.images.WithLabelValues(m.Name, "logits").Add(float64(n))
	k := m.b.out
	if asJSON {
		res := logitsResponse{Model: m.Name, Shape: [2]int{n, k}, Logits: make([]floats32, n), Timing: tm}
		for i := range res.Logits {
			res.Logits[i] = logits[i*k : (i+1)*k]
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer putBuf(buf)
	buf.Reset()
	if err := npy.Write(buf, &tensor.Tensor{Shape: []int{n, k}, Data: logits}); err != nil {
		writeError(w, errorf(http.StatusInternalServerError, "writing the logits: %v", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}

// putBuf returns a buffer to the pool unless it grew very large.
func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 8<<20 {
		bufPool.Put(b)
	}
}

// decodedImage is one decoded, preprocessed image of a request.
type decodedImage struct {
	name string    // multipart file name
	x    []float32 // (C, H, W)
}

// readBody reads the whole body (at most MaxBodyBytes) into buf.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, body io.Reader, buf *bytes.Buffer) *apiError {
	if r.ContentLength > 0 && r.ContentLength <= s.opts.MaxBodyBytes {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(body); err != nil {
		return s.bodyError(err, "reading the body")
	}
	return nil
}

func (s *Server) limitBody(w http.ResponseWriter, r *http.Request) (io.Reader, *apiError) {
	if r.ContentLength > s.opts.MaxBodyBytes {
		return nil, s.tooLarge()
	}
	return http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), nil
}

func (s *Server) tooLarge() *apiError {
	return errorf(http.StatusRequestEntityTooLarge, "request body over the %s limit", byteSize(s.opts.MaxBodyBytes))
}

func (s *Server) bodyError(err error, what string) *apiError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return s.tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errorf(http.StatusRequestTimeout, "%s: timed out", what)
	}
	return errorf(http.StatusBadRequest, "%s: %v", what, err)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d-byte", n)
}

const imageFormats = "JPEG, PNG, GIF, WebP, BMP or TIFF"

// readImages reads a classify request's images: the body itself, or the
// files of a multipart/form-data (or multipart/mixed) body.
func (s *Server) readImages(ctx context.Context, w http.ResponseWriter, r *http.Request, m *served) ([]decodedImage, *apiError) {
	body, e := s.limitBody(w, r)
	if e != nil {
		return nil, e
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer putBuf(buf)
	buf.Reset()
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		if e := s.readBody(w, r, body, buf); e != nil {
			return nil, e
		}
		if buf.Len() == 0 {
			return nil, errorf(http.StatusBadRequest, "empty body: send an image (%s), or multipart/form-data with image files", imageFormats)
		}
		x, e := s.decodeImage(ctx, buf.Bytes(), m)
		if e != nil {
			return nil, e
		}
		return []decodedImage{{x: x}}, nil
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, errorf(http.StatusBadRequest, "%s body without a boundary parameter in its Content-Type", mt)
	}
	mr := multipart.NewReader(body, boundary)
	var images []decodedImage
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.bodyError(err, "malformed multipart body")
		}
		name := part.FileName()
		if name == "" {
			return nil, errorf(http.StatusBadRequest, "multipart field %.64q is not a file: send images as files (curl -F image=@cat.jpg); options go in the query (?top=3)", part.FormName())
		}
		if len(images) == s.opts.MaxImages {
			return nil, errorf(http.StatusRequestEntityTooLarge, "more than %d images in one request", s.opts.MaxImages)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(part); err != nil {
			return nil, s.bodyError(err, fmt.Sprintf("image %.64q: reading the multipart body", name))
		}
		if buf.Len() == 0 {
			return nil, errorf(http.StatusBadRequest, "image %.64q is empty", name)
		}
		x, e := s.decodeImage(ctx, buf.Bytes(), m)
		if e != nil {
			e.msg = fmt.Sprintf("image %.64q: %s", name, e.msg)
			return nil, e
		}
		images = append(images, decodedImage{name: name, x: x})
	}
	if len(images) == 0 {
		return nil, errorf(http.StatusBadRequest, "multipart body without image files: send them as files (curl -F image=@cat.jpg)")
	}
	return images, nil
}

// decodeImage decodes and preprocesses one image for m, with at most
// Decoders at once.
func (s *Server) decodeImage(ctx context.Context, data []byte, m *served) ([]float32, *apiError) {
	select {
	case s.decoders <- struct{}{}:
	case <-ctx.Done():
		return nil, s.waitError(ctx.Err())
	}
	defer func() { <-s.decoders }()
	img, _, err := imageproc.Decode(bytes.NewReader(data), s.opts.MaxPixels)
	switch {
	case errors.Is(err, imageproc.ErrTooLarge):
		return nil, errorf(http.StatusRequestEntityTooLarge, "%v", err)
	case errors.Is(err, imageproc.ErrNotImage):
		return nil, errorf(http.StatusUnsupportedMediaType, "%v: send %s", err, imageFormats)
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	x := imageproc.Preprocess(img, m.pre)
	if len(x.Data) != m.b.per {
		return nil, errorf(http.StatusInternalServerError, "preprocessing made %s, model %q takes (%d, %d, %d)",
			tensor.ShapeString(x.Shape), m.Name, m.chans, m.size, m.size)
	}
	return x.Data, nil
}

// readTensor reads a logits request's .npy body, streamed: float32
// (N, C, H, W) or (C, H, W) with the model's C, H and W, finite values.
//
// A body that starts with exactly the header npy.Write (and numpy.save)
// writes for one image, (1, C, H, W) or (C, H, W), takes a fast path: its
// data is read from the connection straight into a pooled buffer, with no
// decoding on a little-endian machine. Any other body goes through
// npy.Read.
func (s *Server) readTensor(w http.ResponseWriter, r *http.Request, m *served) (x []float32, n int, pooled bool, e *apiError) {
	body, e := s.limitBody(w, r)
	if e != nil {
		return nil, 0, false, e
	}
	want := fmt.Sprintf("(N, %d, %d, %d)", m.chans, m.size, m.size)
	cr := &countingReader{r: body}
	// The fast path.
	var head [256]byte
	h := head[:len(m.npyHead4)]
	k, _ := io.ReadFull(cr, h)
	h = h[:k]
	if littleEndian && len(h) > 0 && (bytes.Equal(h, m.npyHead4) || bytes.Equal(h, m.npyHead3)) {
		x = m.getInput()
		if _, err := io.ReadFull(cr, float32Bytes(x)); err != nil {
			m.putInput(x)
			if cr.err != nil && cr.err != io.EOF {
				return nil, 0, false, s.bodyError(cr.err, "reading the body")
			}
			return nil, 0, false, errorf(http.StatusBadRequest, "body is not a float32 .npy tensor %s: npy: data has %d bytes, shape (1, %d, %d, %d) needs %d",
				want, cr.n-int64(len(h)), m.chans, m.size, m.size, 4*m.b.per)
		}
		if i := firstNonFinite(x); i >= 0 {
			v := x[i]
			m.putInput(x)
			return nil, 0, false, errorf(http.StatusBadRequest, "tensor value %d is %v: inputs must be finite", i, v)
		}
		return x, 1, true, nil
	}
	t, err := npy.Read(io.MultiReader(bytes.NewReader(h), cr))
	switch {
	case err != nil && cr.err != nil && cr.err != io.EOF:
		return nil, 0, false, s.bodyError(cr.err, "reading the body")
	case err != nil && cr.n == 0:
		return nil, 0, false, errorf(http.StatusBadRequest, "empty body: send a float32 .npy tensor %s", want)
	case err != nil:
		return nil, 0, false, errorf(http.StatusBadRequest, "body is not a float32 .npy tensor %s: %v", want, err)
	}
	if len(t.Shape) == 3 {
		t.Shape = append([]int{1}, t.Shape...)
	}
	if len(t.Shape) != 4 || t.Shape[1] != m.chans || t.Shape[2] != m.size || t.Shape[3] != m.size {
		return nil, 0, false, errorf(http.StatusBadRequest, "tensor shape %s: model %q takes %s", tensor.ShapeString(t.Shape), m.Name, want)
	}
	switch n := t.Shape[0]; {
	case n == 0:
		return nil, 0, false, errorf(http.StatusBadRequest, "tensor shape %s has no images", tensor.ShapeString(t.Shape))
	case n > s.opts.MaxImages:
		return nil, 0, false, errorf(http.StatusRequestEntityTooLarge, "tensor shape %s: more than %d images in one request", tensor.ShapeString(t.Shape), s.opts.MaxImages)
	}
	if i := firstNonFinite(t.Data); i >= 0 {
		return nil, 0, false, errorf(http.StatusBadRequest, "tensor value %d is %v: inputs must be finite", i, t.Data[i])
	}
	return t.Data, t.Shape[0], false, nil
}

// littleEndian: float32 data in an .npy file ('<f4') has the machine's
// byte order, so it can be read into a []float32 as it is.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes is the memory of x as bytes.
func float32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// npyHeader returns the header npy.Write writes for a float32 tensor of
// this shape (byte-identical to numpy.save's).
func npyHeader(shape ...int) []byte {
	t := tensor.New(shape...)
	var buf bytes.Buffer
	npy.Write(&buf, t) // cannot fail: the shape and data agree
	return buf.Bytes()[:buf.Len()-4*len(t.Data)]
}

// countingReader remembers how many bytes it read and the first error
// other than io.EOF of the reader under it.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// firstNonFinite returns the index of the first NaN or infinity in x, or
// -1: the exponent bits of 8 values at a time, all ones only for those.
func firstNonFinite(x []float32) int {
	const e = 0x7f800000
	i := 0
	for ; i+8 <= len(x); i += 8 {
		y := x[i : i+8 : i+8]
		if max(math.Float32bits(y[0])&e, math.Float32bits(y[1])&e, math.Float32bits(y[2])&e, math.Float32bits(y[3])&e,
			math.Float32bits(y[4])&e, math.Float32bits(y[5])&e, math.Float32bits(y[6])&e, math.Float32bits(y[7])&e) == e {
			break
		}
	}
	for ; i < len(x); i++ {
		if math.Float32bits(x[i])&e == e {
			return i
		}
	}
	return -1
}
