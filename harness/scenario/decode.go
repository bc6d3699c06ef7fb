package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// decode unmarshals b into v (a pointer to a struct) after checking every field of the JSON
// against v's type, so that an unknown field or a wrong type is reported with its path
// ("dns.mx[0].tlsa[1]") and the file, and a syntax error with its line and column.
func decode(file string, b []byte, v any) error {
	var raw any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(b, se.Offset-1) // Offset counts the offending byte
			return &FieldError{File: fmt.Sprintf("%s:%d:%d", file, line, col), Msg: "invalid JSON: " + se.Error()}
		}
		return &FieldError{File: file, Msg: "invalid JSON: " + err.Error()}
	}
	if d.More() {
		return &FieldError{File: file, Msg: "invalid JSON: more than one value"}
	}
	if err := check(file, "", raw, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil { // checked above; a safety net
		return &FieldError{File: file, Msg: err.Error()}
	}
	return nil
}

func position(b []byte, off int64) (line, col int) {
	off = max(off, 0)
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return
}

var unmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// check compares a decoded JSON value with the Go type it will be unmarshalled into.
func check(file, path string, raw any, t reflect.Type) error {
	bad := func(format string, args ...any) error {
		return &FieldError{File: file, Field: path, Msg: fmt.Sprintf(format, args...)}
	}
	if raw == nil {
		return nil // null: the zero value
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
		b, _ := json.Marshal(raw)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b); err != nil {
			return bad("%v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			return bad("want an object, got %s", describe(raw))
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f
			names = append(names, name)
		}
		var errs []error
		for k, v := range obj {
			f, ok := fields[k]
			if !ok {
				errs = append(errs, &FieldError{File: file, Field: join(path, k),
					Msg: fmt.Sprintf("unknown field; known fields here: %s", strings.Join(names, ", "))})
				continue
			}
			if err := check(file, join(path, k), v, f.Type); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(sortErrs(errs)...)
	case reflect.Map:
		obj, ok := raw.(map[string]any)
		if !ok {
			return bad("want an object, got %s", describe(raw))
		}
		var errs []error
		for k, v := range obj {
			if err := check(file, join(path, k), v, t.Elem()); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(sortErrs(errs)...)
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			return bad("want a list, got %s", describe(raw))
		}
		var errs []error
		for i, v := range arr {
			if err := check(file, fmt.Sprintf("%s[%d]", path, i), v, t.Elem()); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case reflect.String:
		if _, ok := raw.(string); !ok {
			return bad("want a string, got %s", describe(raw))
		}
	case reflect.Bool:
		if _, ok := raw.(bool); !ok {
			return bad("want true or false, got %s", describe(raw))
		}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		n, ok := raw.(json.Number)
		if !ok {
			return bad("want a whole number, got %s", describe(raw))
		}
		if _, err := n.Int64(); err != nil {
			return bad("want a whole number, got %s", n)
		}
	case reflect.Float64, reflect.Float32:
		if _, ok := raw.(json.Number); !ok {
			return bad("want a number, got %s", describe(raw))
		}
	}
	return nil
}

// sortErrs orders field errors by message, for stable output (map order is random).
func sortErrs(errs []error) []error {
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && errs[j].Error() < errs[j-1].Error(); j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
	return errs
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return fmt.Sprintf("%v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%v", v)
}
