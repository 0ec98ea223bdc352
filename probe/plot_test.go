package probe

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteAxisReportAndPlots(t *testing.T) {
	run, err := OpenRun(axisFixtureRun)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildRunAxis(run, RunAxisOptions{MinScore: KeepScore, AxisOptions: rolloutAll})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rep, err := b.WriteAxisReport(dir, run.Manifest(), run.Dir(), KeepScore, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PersonaSpacePlot, VariancePlot, PC1CosinePlot} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Well-formed XML with an <svg> root.
		dec := xml.NewDecoder(strings.NewReader(string(data)))
		root := ""
		for {
			tok, err := dec.Token()
			if err != nil {
				if root == "" {
					t.Fatalf("%s: no XML root element: %v", name, err)
				}
				break
			}
			if se, ok := tok.(xml.StartElement); ok && root == "" {
				root = se.Name.Local
			}
		}
		if root != "svg" {
			t.Errorf("%s: root element %q, want svg", name, root)
		}
		if name == PersonaSpacePlot {
			for _, role := range append(b.RoleNames, "default (Assistant)") {
				if !strings.Contains(string(data), role) {
					t.Errorf("%s: no label %q", name, role)
				}
			}
		}
	}
	var back AxisReport
	data, err := os.ReadFile(filepath.Join(dir, AxisReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.PerLayer) != 2 || len(back.Roles) != len(b.RoleNames) || len(rep.Plots) != 3 {
		t.Errorf("report: %d layers, %d roles, %d plots", len(back.PerLayer), len(back.Roles), len(rep.Plots))
	}
	// The default projects above the average role on the unit axis: by construction
	// <default - mean(roles), u> = |axis| > 0.
	var mean float64
	for _, r := range back.Roles {
		mean += r.Projection / float64(len(back.Roles))
	}
	if got, want := back.DefaultProjection-mean, b.AxisNorms[1]; got < want*(1-1e-6) || got > want*(1+1e-6) {
		t.Errorf("default minus mean role projection %v, want |axis| %v", got, want)
	}
	if _, err := b.Report(run.Manifest(), run.Dir(), KeepScore, 2); err == nil {
		t.Error("report at layer 2 of 2: no error")
	}
}
