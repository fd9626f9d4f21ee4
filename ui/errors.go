package ui

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sand-appliance/sand/appliance"
)

// fieldError ties an error to the request field it concerns ("name",
// "size", "group"...), so the API can name the field and a form can show
// the message next to it. The field names are the JSON keys of the API's
// requests, and the form inputs carry the same names.
type fieldError struct {
	Field string
	Err   error
}

func (e *fieldError) Error() string { return e.Err.Error() }
func (e *fieldError) Unwrap() error { return e.Err }

// onField attaches a field to err (nothing when field is empty).
func onField(field string, err error) error {
	if err == nil || field == "" {
		return err
	}
	return &fieldError{Field: field, Err: err}
}

// errorField is the field an error concerns, or "".
func errorField(err error) string {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// statusOf maps the box's error kinds to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, appliance.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, appliance.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, appliance.ErrExists), errors.Is(err, appliance.ErrInUse), errors.Is(err, errStandalone),
		errors.Is(err, appliance.ErrNotServing):
		return http.StatusConflict
	case errors.Is(err, appliance.ErrNoSpace):
		return http.StatusUnprocessableEntity
	case errors.Is(err, context.Canceled):
		return 499
	}
	return http.StatusInternalServerError
}

// sentinels are the error kinds whose names ("invalid request: ") mean
// something to a program but only clutter a sentence for a person.
var sentinels = []error{appliance.ErrInvalid, appliance.ErrNotFound, appliance.ErrExists, appliance.ErrNoSpace, appliance.ErrInUse, appliance.ErrNotServing}

// humanError words an error for the web UI: the API's message without the
// error kind in front, starting with a capital letter.
func humanError(err error) string {
	msg := err.Error()
	for _, s := range sentinels {
		msg = strings.Replace(msg, s.Error()+": ", "", 1)
	}
	return sentence(msg)
}

// sentence starts s with a capital letter and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, ")") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}
