package serve

import (
	"fmt"
	"strings"

	"tether/axis"
	"tether/model"
)

// LoadAxes reads the axes given as NAME=FILE and checks each against m (axis.Axis.CheckModel:
// layer count, hidden size, config.json).
func LoadAxes(specs []string, m *model.Model) (map[string]AxisFile, error) {
	out := map[string]AxisFile{}
	for _, s := range specs {
		name, path, ok := strings.Cut(s, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("serve: --axis %q: expected NAME=FILE", s)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("serve: --axis %q: the name %q is given twice", s, name)
		}
		a, err := axis.Read(path)
		if err != nil {
			return nil, fmt.Errorf("serve: --axis %s: %w", name, err)
		}
		info := axis.ModelInfo{Name: m.Name, Layers: m.Config.NumLayers, Hidden: m.Config.HiddenSize, Dir: m.Dir}
		if err := a.CheckModel(info, false); err != nil {
			return nil, fmt.Errorf("serve: --axis %s=%s: %w", name, path, err)
		}
		out[name] = AxisFile{Name: name, Path: path, Axis: a}
	}
	return out, nil
}
