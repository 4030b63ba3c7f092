// Package config holds certgate's file schemas (the CA/server config
// certgate.yaml and the gateway config), their strict decoding, defaults and
// validation. Decoding is strict: an unknown or misspelled field is an error
// naming the field and its line. Defaults are applied once after decoding;
// validation is a pure function that never mutates.
package config
