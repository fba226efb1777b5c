package serve

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
)

// checkFuzzAnswer fails unless w is a 200 or a 4xx for bad input (400,
// 413, 415) with a one-line JSON {"error": "..."}: never a 5xx.
func checkFuzzAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	switch w.Code {
	case 200:
		return
	case 400, 413, 415:
	default:
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var e struct{ Error string }
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" ||
		bytes.Count(bytes.TrimSuffix(w.Body.Bytes(), []byte("\n")), []byte("\n")) != 0 {
		t.Fatalf("status %d with body %q", w.Code, w.Body)
	}
}

// FuzzClassifyRequest sends arbitrary bytes to /classify as an image body,
// and as a multipart/form-data body (boundary "fuzz").
//
//	go test -run '^$' -fuzz FuzzClassifyRequest -fuzztime 60s ./serve
func FuzzClassifyRequest(f *testing.F) {
	s, _, _ := newTestServer(f, Options{MaxPixels: 1 << 20, MaxBodyBytes: 1 << 20, MaxImages: 4, QueueSize: 64})
	png := samplePNG(f, 4)
	rgb := encodePNG(f, 9, 13, 1)
	f.Add(png, false)
	f.Add(png[:len(png)/2], false)
	f.Add(rgb, false)
	f.Add([]byte("GIF89a\x01\x00\x01\x00"), false)
	f.Add([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), false)
	f.Add([]byte{}, false)
	two := []byte("--fuzz\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.png\"\r\n\r\n" + string(png) +
		"\r\n--fuzz\r\nContent-Disposition: form-data; name=\"b\"; filename=\"b.png\"\r\nContent-Type: image/png\r\n\r\n" +
		string(rgb) + "\r\n--fuzz--\r\n")
	f.Add(two, true)
	f.Add(two[:len(two)/2], true)
	f.Add([]byte("--fuzz\r\nContent-Disposition: form-data; name=\"top\"\r\n\r\n3\r\n--fuzz--\r\n"), true)
	f.Add([]byte("--fuzz--\r\n"), true)
	f.Fuzz(func(t *testing.T, body []byte, multipart bool) {
		ct := "image/png"
		if multipart {
			ct = "multipart/form-data; boundary=fuzz"
		}
		for _, model := range []string{"fashion-mnist", "tiny"} {
			w := do(s, "POST", "/v1/models/"+model+"/classify?top=3&logits=1", ct, body)
			checkFuzzAnswer(t, w)
			if w.Code != 200 {
				continue
			}
			var res classifyJSON
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || len(res.Results) == 0 {
				t.Fatalf("200 with %q", w.Body)
			}
			for _, r := range res.Results {
				if len(r.Top) != 3 || len(r.Logits) < 3 {
					t.Fatalf("result %+v", r)
				}
			}
		}
	})
}

// FuzzLogitsRequest sends arbitrary bytes to /logits as an .npy body;
// a 200 carries (N, 10) logits.
//
//	go test -run '^$' -fuzz FuzzLogitsRequest -fuzztime 60s ./serve
func FuzzLogitsRequest(f *testing.F) {
	s, _, _ := newTestServer(f, Options{MaxBodyBytes: 1 << 20, MaxImages: 4, QueueSize: 64})
	one := npyBytes(f, randTensor(1, 1, 1, 28, 28))
	f.Add(one)
	f.Add(npyBytes(f, randTensor(2, 3, 1, 28, 28)))
	f.Add(npyBytes(f, randTensor(3, 1, 28, 28)))
	f.Add(npyBytes(f, randTensor(4, 5, 1, 28, 28)))
	f.Add(npyBytes(f, randTensor(5, 1, 3, 28, 28)))
	f.Add(one[:len(one)-7])
	f.Add(one[:40])
	f.Add(writeNpyRaw("<f4", "(0, 1, 28, 28)", nil))
	f.Add(writeNpyRaw("<f8", "(1, 1, 28, 28)", make([]byte, 8*784)))
	f.Add(writeNpyRaw("<f4", "(1, 1, 28, 28)", bytes.Repeat([]byte{0, 0, 0xc0, 0x7f}, 784))) // NaN
	f.Add(writeNpyRaw("<f4", "(99999999999, 1, 28, 28)", nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		w := do(s, "POST", "/v1/models/fashion-mnist/logits", "application/octet-stream", body)
		checkFuzzAnswer(t, w)
		if w.Code != 200 {
			return
		}
		y, err := npy.Read(w.Body)
		if err != nil || len(y.Shape) != 2 || y.Shape[0] < 1 || y.Shape[0] > 4 || y.Shape[1] != 10 {
			t.Fatalf("200 with logits %v, %v", y, err)
		}
	})
}
