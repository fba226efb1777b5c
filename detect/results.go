package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ToResults converts one image's detections (boxes in original image
// pixels, see Rescale) to COCO results: label k becomes categoryIDs[k]
// (Dataset.CategoryIDs), boxes become [x, y, w, h].
func ToResults(imageID int, dets []Detection, categoryIDs []int) ([]Result, error) {
	out := make([]Result, len(dets))
	for i, d := range dets {
		if d.Label < 1 || d.Label >= len(categoryIDs) {
			return nil, fmt.Errorf("detect: detection %d of image %d: label %d outside 1..%d", i, imageID, d.Label, len(categoryIDs)-1)
		}
		out[i] = Result{ImageID: imageID, CategoryID: categoryIDs[d.Label], BBox: d.Box.XYWH(), Score: float64(d.Score)}
	}
	return out, nil
}

// WriteResults writes detections in COCO's results format (a JSON array
// of image_id, category_id, bbox, score), readable by any COCO tool.
func WriteResults(w io.Writer, res []Result) error {
	if res == nil {
		res = []Result{}
	}
	enc := json.NewEncoder(w)
	return enc.Encode(res)
}

// ReadResults reads a COCO results file; errors name the file (and the
// entry for a bbox that is not 4 finite numbers).
func ReadResults(path string) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		ImageID    *int      `json:"image_id"`
		CategoryID *int      `json:"category_id"`
		BBox       []float64 `json:"bbox"`
		Score      *float64  `json:"score"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s: corrupt JSON at byte %d: %w", path, se.Offset, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]Result, len(raw))
	for i, r := range raw {
		if r.ImageID == nil || r.CategoryID == nil || r.Score == nil || len(r.BBox) != 4 {
			return nil, fmt.Errorf("%s: result %d: want image_id, category_id, bbox [x, y, w, h] and score", path, i)
		}
		out[i] = Result{ImageID: *r.ImageID, CategoryID: *r.CategoryID, BBox: [4]float64(r.BBox), Score: *r.Score}
	}
	return out, nil
}
