package bench

import (
	"bytes"
	_ "embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// DriftReportSchema is the JSON schema (draft 2020-12) of report.json,
// kept in bench/schema/drift-report.schema.json.
//
//go:embed schema/drift-report.schema.json
var DriftReportSchema []byte

// driftSchemaURL is the schema's $id.
const driftSchemaURL = "https://tether.invalid/schema/drift-report.schema.json"

var (
	driftSchemaOnce sync.Once
	driftSchema     *jsonschema.Schema
	driftSchemaErr  error
)

// compiledDriftSchema compiles DriftReportSchema once (no network: the
// draft 2020-12 meta-schema is built into the validator).
func compiledDriftSchema() (*jsonschema.Schema, error) {
	driftSchemaOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(DriftReportSchema))
		if err != nil {
			driftSchemaErr = fmt.Errorf("bench: schema/drift-report.schema.json: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if err := c.AddResource(driftSchemaURL, doc); err != nil {
			driftSchemaErr = fmt.Errorf("bench: schema/drift-report.schema.json: %w", err)
			return
		}
		if driftSchema, err = c.Compile(driftSchemaURL); err != nil {
			driftSchemaErr = fmt.Errorf("bench: schema/drift-report.schema.json: %w", err)
		}
	})
	return driftSchema, driftSchemaErr
}

// ValidateDriftReportJSON checks report.json bytes against
// DriftReportSchema; the error lists every violation with its JSON pointer.
func ValidateDriftReportJSON(data []byte) error {
	sch, err := compiledDriftSchema()
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("bench: drift report: not JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("bench: drift report does not match schema/drift-report.schema.json: %w", err)
	}
	return nil
}
