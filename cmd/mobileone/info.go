package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/model"
)

const infoUsage = `usage: mobileone info (-m s0..s4 | -w CKPT) [--size 224 | --size HxW] [--json]
       mobileone info --list [--json]
       mobileone info -m MODEL [--size 224] [--json]

--list lists every model of the comparison zoo (MobileOne S0–S4 and the mobile
CNNs it is compared with, named as torchvision names them) with its parameters
and MACs at 224×224. -m MODEL describes one of them: parameters, MACs, its
published preprocessing and a per-node table of its graph.

Prints the parameter count (inference-time, fused, and train-time), the MACs
(multiply-accumulates) of the fused and train-time networks at the given input
size, and a per-layer table of the fused network: name, kind, in->out channels,
kernel, stride, groups, output size and MACs. --json prints the same as one
JSON object (fields params, train_params, macs, train_macs, layers, ...).`

func cmdInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("info", infoUsage, stderr)
	var ck ckptFlags
	var size string
	ck.register(fs, false)
	fs.StringVar(&size, "size", "224", "input size `H` or HxW")
	asJSON := fs.Bool("json", false, "print one JSON object")
	list := fs.Bool("list", false, "list the models of the comparison zoo")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	weights, variant := ck.weights, ck.variant
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	h, w, err := parseSize(size)
	if err != nil {
		return err
	}
	if *list {
		return zooList(stdout, *asJSON)
	}
	if zs, err := graphSpec(variant, ""); err != nil {
		return err
	} else if zs != nil {
		if weights != "" {
			return fmt.Errorf("-m %s describes the architecture; -w is for MobileOne checkpoints", variant)
		}
		return zooInfo(zs, h, w, stdout, *asJSON)
	}
	var cfg model.Config
	var fusedCkpt *bool
	switch {
	case weights != "":
		if err := ck.check(); err != nil {
			return err
		}
		m, err := ck.load(mobileone.LoadOptions{KeepUnfused: true}, false, stderr)
		if err != nil {
			return err
		}
		cfg = m.Config
		f := m.IsFused()
		fusedCkpt = &f
	case variant != "":
		if cfg, err = model.Variant(variant); err != nil {
			return err
		}
	default:
		fs.Usage()
		return errors.New("need -m VARIANT or -w CHECKPOINT")
	}
	name := cfg.Name
	if name == "" {
		name = "custom"
	}
	layers := cfg.Layers(h, w)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Variant     string        `json:"variant"`
			Config      model.Config  `json:"config"`
			Checkpoint  string        `json:"checkpoint,omitempty"`
			Fused       *bool         `json:"checkpoint_fused,omitempty"`
			Input       [2]int        `json:"input"`
			Params      int           `json:"params"`
			TrainParams int           `json:"train_params"`
			MACs        int64         `json:"macs"`
			TrainMACs   int64         `json:"train_macs"`
			Layers      []model.Layer `json:"layers"`
		}{name, cfg, weights, fusedCkpt, [2]int{h, w}, cfg.Params(), cfg.TrainParams(), cfg.MACs(h, w), cfg.TrainMACs(h, w), layers})
	}
	fmt.Fprintf(stdout, "MobileOne %s: %s\n", name, cfg.Describe())
	if weights != "" {
		form := "train-time (unfused)"
		if *fusedCkpt {
			form = "fused"
		}
		fmt.Fprintf(stdout, "checkpoint:  %s (%s)\n", weights, form)
	}
	fmt.Fprintf(stdout, "parameters:  %s fused (inference), %s train-time\n", commas(int64(cfg.Params())), commas(int64(cfg.TrainParams())))
	fmt.Fprintf(stdout, "MACs at %dx%d: %.1f M fused, %.1f M train-time\n\n", h, w, float64(cfg.MACs(h, w))/1e6, float64(cfg.TrainMACs(h, w))/1e6)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tkind\tin→out\tkernel\tstride\tgroups\toutput\tparams\tMACs\t")
	for _, l := range layers {
		fmt.Fprintf(tw, "%s\t%s\t%d→%d\t%d\t%d\t%d\t%dx%d\t%s\t%s\t\n", l.Name, l.Kind, l.In, l.Out, l.Kernel, l.Stride, l.Groups, l.OutH, l.OutW, commas(int64(l.Params)), commas(l.MACs))
	}
	return tw.Flush()
}

func parseSize(s string) (int, int, error) {
	hs, ws, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		ws = hs
	}
	h, err1 := strconv.Atoi(hs)
	w, err2 := strconv.Atoi(ws)
	if err1 != nil || err2 != nil || h < 1 || w < 1 || h > 16384 || w > 16384 {
		return 0, 0, fmt.Errorf("bad --size %q: want H or HxW, 1..16384", s)
	}
	return h, w, nil
}

func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
