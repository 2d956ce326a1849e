package options

import "errors"

// ErrRequired is the error of a FlagError whose flag has no value. The injector tells it apart
// with errors.Is: a missing value is fixed where the default lives, not where a bad value came from.
var ErrRequired = errors.New("is required")

// FlagError is one problem with one flag. The injector maps Flag to the annotation that sets it
// (errors.As), so rewording a message can never attach it to the wrong annotation.
type FlagError struct {
	// Flag is the flag's name without dashes, one of the Flag* constants.
	Flag string
	// Env names the environment variable the bad value came from; empty when it came from a flag
	// or when the value is missing.
	Env string
	// Err says what is wrong with the value.
	Err error
}

func (e *FlagError) Error() string {
	if e.Env != "" {
		return "--" + e.Flag + " (from " + e.Env + "): " + e.Err.Error()
	}
	return "--" + e.Flag + ": " + e.Err.Error()
}

func (e *FlagError) Unwrap() error { return e.Err }
