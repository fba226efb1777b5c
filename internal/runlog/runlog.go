// Package runlog keeps a training run's record in its folder: a CSV log with
// one row per epoch and a PNG plot of the curves, both rewritten atomically
// after every epoch, and a progress bar per epoch on a terminal.
package runlog

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mobileone-go/mobileone/internal/fsutil"
)

// Row is one epoch's summary.
type Row struct {
	Epoch        int     // 1-based
	Seconds      float64 // training time since the run started (excluding evaluation)
	LR           float64
	WeightDecay  float64
	TrainLoss    float64
	TrainAcc     float64 // percent
	ValLoss      float64
	ValAcc       float64 // percent, raw weights
	ValAccEMA    float64 // percent, EMA weights (0 if none)
	ImagesPerSec float64
	Images       int // images trained in the epoch (fewer than the set's when pruned; 0 in older logs)
	// Segmentation runs (Log.Dense): TrainAcc is the training pixel
	// accuracy, and these the validation mIoU and pixel accuracy (percent).
	ValMIoU, ValPixelAcc float64
	// Detection runs (Log.Detect): the validation COCO AP and AP50
	// (percent); TrainAcc is not used.
	ValAP, ValAP50 float64
}

var (
	header      = []string{"epoch", "seconds", "lr", "weight_decay", "train_loss", "train_acc", "val_loss", "val_acc", "val_acc_ema", "images_per_s", "images"}
	denseHeader = []string{"epoch", "seconds", "lr", "weight_decay", "train_loss", "train_pixel_acc", "images_per_s", "images", "val_miou", "val_pixel_acc"}
	detHeader   = []string{"epoch", "seconds", "lr", "weight_decay", "train_loss", "images_per_s", "images", "val_ap", "val_ap50"}
)

func f64(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func (r Row) record() []string {
	f := f64
	return []string{strconv.Itoa(r.Epoch), f(r.Seconds), f(r.LR), f(r.WeightDecay), f(r.TrainLoss), f(r.TrainAcc), f(r.ValLoss), f(r.ValAcc), f(r.ValAccEMA), f(r.ImagesPerSec), strconv.Itoa(r.Images)}
}

func (r Row) denseRecord() []string {
	f := f64
	return []string{strconv.Itoa(r.Epoch), f(r.Seconds), f(r.LR), f(r.WeightDecay), f(r.TrainLoss), f(r.TrainAcc), f(r.ImagesPerSec), strconv.Itoa(r.Images), f(r.ValMIoU), f(r.ValPixelAcc)}
}

func (r Row) detRecord() []string {
	f := f64
	return []string{strconv.Itoa(r.Epoch), f(r.Seconds), f(r.LR), f(r.WeightDecay), f(r.TrainLoss), f(r.ImagesPerSec), strconv.Itoa(r.Images), f(r.ValAP), f(r.ValAP50)}
}

// Log is the record of one run folder.
type Log struct {
	// Dense makes the log a segmentation run's: its own columns (train
	// pixel accuracy, validation mIoU and pixel accuracy) and curves.
	Dense bool
	// Detect makes the log a detection run's: train loss, validation COCO
	// AP and AP50.
	Detect bool
	dir    string
	rows   []Row
}

// CSVName and PlotName are the files Log writes in the run folder.
const (
	CSVName  = "log.csv"
	PlotName = "curves.png"
)

// Open starts a run log in dir. If the folder already has a log (a resumed
// run), its rows up to and including epoch keep are kept.
func Open(dir string, keep int) (*Log, error) {
	l := &Log{dir: dir}
	f, err := os.Open(filepath.Join(dir, CSVName))
	if os.IsNotExist(err) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CSVName), err)
	}
	for _, r := range rows {
		if r.Epoch <= keep {
			l.rows = append(l.rows, r)
		}
	}
	return l, nil
}

func parse(r io.Reader) ([]Row, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows []Row
	for i, rec := range recs {
		if i == 0 {
			continue
		}
		dense := recs[0][len(recs[0])-1] == denseHeader[len(denseHeader)-1]
		det := recs[0][len(recs[0])-1] == detHeader[len(detHeader)-1]
		if det && len(rec) != len(detHeader) {
			return nil, fmt.Errorf("line %d has %d fields, want %d", i+1, len(rec), len(detHeader))
		}
		if dense && len(rec) != len(denseHeader) {
			return nil, fmt.Errorf("line %d has %d fields, want %d", i+1, len(rec), len(denseHeader))
		}
		if !dense && !det && len(rec) != len(header) && len(rec) != len(header)-1 { // logs before the images column
			return nil, fmt.Errorf("line %d has %d fields, want %d", i+1, len(rec), len(header))
		}
		v := make([]float64, len(rec))
		for j, s := range rec {
			if v[j], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("line %d: %v", i+1, err)
			}
		}
		if det {
			rows = append(rows, Row{Epoch: int(v[0]), Seconds: v[1], LR: v[2], WeightDecay: v[3], TrainLoss: v[4],
				ImagesPerSec: v[5], Images: int(v[6]), ValAP: v[7], ValAP50: v[8]})
			continue
		}
		if dense {
			rows = append(rows, Row{Epoch: int(v[0]), Seconds: v[1], LR: v[2], WeightDecay: v[3], TrainLoss: v[4], TrainAcc: v[5],
				ImagesPerSec: v[6], Images: int(v[7]), ValMIoU: v[8], ValPixelAcc: v[9]})
			continue
		}
		row := Row{Epoch: int(v[0]), Seconds: v[1], LR: v[2], WeightDecay: v[3], TrainLoss: v[4], TrainAcc: v[5], ValLoss: v[6],
			ValAcc: v[7], ValAccEMA: v[8], ImagesPerSec: v[9]}
		if len(v) == len(header) {
			row.Images = int(v[10])
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Rows returns the epochs logged so far.
func (l *Log) Rows() []Row { return l.rows }

// Append adds an epoch and rewrites the CSV and the plot.
func (l *Log) Append(r Row) error {
	l.rows = append(l.rows, r)
	err := fsutil.WriteFileAtomic(filepath.Join(l.dir, CSVName), func(w io.Writer) error {
		cw := csv.NewWriter(w)
		switch {
		case l.Detect:
			cw.Write(detHeader)
		case l.Dense:
			cw.Write(denseHeader)
		default:
			cw.Write(header)
		}
		for _, r := range l.rows {
			switch {
			case l.Detect:
				cw.Write(r.detRecord())
			case l.Dense:
				cw.Write(r.denseRecord())
			default:
				cw.Write(r.record())
			}
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return err
	}
	return Plot(filepath.Join(l.dir, PlotName), l.rows)
}
