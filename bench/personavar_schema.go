package bench

import (
	"bytes"
	_ "embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// VarianceReportSchema is the JSON schema (draft 2020-12) of `bench variance` report.json, kept
// in bench/schema/variance-report.schema.json.
//
//go:embed schema/variance-report.schema.json
var VarianceReportSchema []byte

const varianceSchemaURL = "https://tether.invalid/schema/variance-report.schema.json"

var compiledVarianceSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(VarianceReportSchema))
	if err != nil {
		return nil, fmt.Errorf("bench: schema/variance-report.schema.json: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(varianceSchemaURL, doc); err != nil {
		return nil, fmt.Errorf("bench: schema/variance-report.schema.json: %w", err)
	}
	s, err := c.Compile(varianceSchemaURL)
	if err != nil {
		return nil, fmt.Errorf("bench: schema/variance-report.schema.json: %w", err)
	}
	return s, nil
})

// ValidateVarianceReportJSON checks report.json bytes against VarianceReportSchema; the error
// lists every violation with its JSON pointer.
func ValidateVarianceReportJSON(data []byte) error {
	sch, err := compiledVarianceSchema()
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("bench: variance report: not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("bench: variance report does not match schema/variance-report.schema.json: %w", err)
	}
	return nil
}
