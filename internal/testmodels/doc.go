// Package testmodels writes and opens the small models the tests of several
// packages share: random-weight Llama-family models with the ChatML test
// tokenizer, and the bundled stories260K converted to a Hugging Face
// directory. It is for tests only (it takes a testing.TB and fails the test
// on error); it lives in non-test files so that other packages' tests can
// import it.
package testmodels
