package main

import (
	"fmt"

	"tether/axis"
	"tether/steer"
)

func init() {
	register("axis export-gguf", "export an axis as a llama.cpp/repeng control vector (GGUF) for add-steering", runAxisExportGGUF)
}

func runAxisExportGGUF(args []string) error {
	fs := newFlags("axis export-gguf", "--axis A --out F.gguf [--layers L] [--scale S]",
		"tether axis export-gguf --axis axis.safetensors --out assistant.gguf --layers 40:56 --scale 4\n"+
			"  llama-cli -m model.gguf --control-vector-scaled assistant.gguf:1.0   # llama.cpp adds it; it cannot cap")
	axisPath := fs.String("axis", "", "axis file (axis.safetensors)")
	out := fs.String("out", "", "output control vector file (.gguf)")
	layersSpec := fs.String("layers", "", "layers to export: "+layerSyntax+" (default: every layer from 1; llama.cpp cannot steer layer 0)")
	scale := fs.Float64("scale", 1, "each layer's unit axis is multiplied by this (positive = toward the Assistant)")
	limit(fs, "scale", finite())
	if err := parseFlags(fs, args, "axis", "out"); err != nil {
		return err
	}
	if err := checkOutputFile("out", *out, "axis.gguf"); err != nil {
		return fmt.Errorf("axis export-gguf: %w", err)
	}
	a, err := axis.Read(*axisPath)
	if err != nil {
		return err
	}
	var layers []int
	if *layersSpec != "" {
		if layers, err = steer.ParseLayers(*layersSpec, a.Layers); err != nil {
			return fmt.Errorf("axis export-gguf: --layers: %w", err)
		}
	}
	cv, err := steer.AxisControlVector(a, layers, float32(*scale))
	if err != nil {
		return err
	}
	if err := steer.WriteControlVector(*out, cv); err != nil {
		return err
	}
	fmt.Printf("wrote %s: control vector of %d layers (%s), hidden size %d, unit axis x %g; direction.N steers block N's output as in llama.cpp\n",
		*out, len(cv.Directions), steer.FormatLayers(cv.Layers()), cv.Hidden, *scale)
	return nil
}
