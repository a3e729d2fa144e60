package main

// Layered configuration for a command's flags: a flag on the command line wins over
// QUORUMKV_<FLAG> in the environment, which wins over the TOML file named by --config
// (or $QUORUMKV_CONFIG), which wins over the flag's default. It is written over the
// flag.FlagSet, so every flag a command declares is covered with no list to keep.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

const (
	envPrefix       = "QUORUMKV_"
	configFlag      = "config"
	printConfigFlag = "print-config"
)

// Where a flag's effective value came from.
const (
	fromDefault = "default"
	fromFile    = "config file"
	fromFlag    = "flag"
)

// errConfig marks a configuration the user got wrong (exit code 2).
var errConfig = errors.New("bad configuration")

// envName is the environment variable of a flag: hint-window → QUORUMKV_HINT_WINDOW.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// configFlags are the two flags that steer the configuration itself.
type configFlags struct {
	file  *string
	print *bool
}

func addConfigFlags(fs *flag.FlagSet) configFlags {
	return configFlags{
		file: fs.String(configFlag, "", "TOML `file` of settings named as the flags (e.g. hint-window = \"3h\"); "+
			"flags, then $"+envPrefix+"<FLAG> variables (e.g. "+envName("hint-window")+"), override it ($"+envName(configFlag)+" names it too)"),
		print: fs.Bool(printConfigFlag, false, "print the effective configuration as TOML, each value with its source, and exit"),
	}
}

// settable reports whether a flag takes its value from the environment and the file;
// the two configuration flags do not (--config may come from the environment only).
func settable(name string) bool { return name != configFlag && name != printConfigFlag }

// applyConfig gives every flag of fs that the command line left unset its value from
// the environment, else from the config file. fs must be parsed already. It returns the
// source of each flag's value (fromFlag, an environment variable's name, fromFile or
// fromDefault). Errors wrap errConfig.
func applyConfig(fs *flag.FlagSet, getenv func(string) string) (map[string]string, error) {
	src := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { src[f.Name] = fromDefault })
	fs.Visit(func(f *flag.Flag) { src[f.Name] = fromFlag })

	path := ""
	if f := fs.Lookup(configFlag); f != nil {
		path = f.Value.String()
		if path == "" {
			path = getenv(envName(configFlag))
		}
	}
	var file map[string]string
	if path != "" {
		var err error
		if file, err = loadConfigFile(fs, path); err != nil {
			return nil, err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if src[f.Name] != fromDefault || !settable(f.Name) {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, setError(f, err)))
			}
			src[f.Name] = envName(f.Name)
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s = %q: %w", path, f.Name, v, setError(f, err)))
			}
			src[f.Name] = fromFile
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", errConfig, errors.Join(errs...))
	}
	return src, nil
}

// setError explains a value a flag refused: the flag package says only "parse error"
// for numbers, booleans and durations.
func setError(f *flag.Flag, err error) error {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err
	}
	switch g.Get().(type) {
	case time.Duration:
		return fmt.Errorf("want a duration such as 90s, 15m or 3h: %w", err)
	case bool:
		return fmt.Errorf("want true or false: %w", err)
	case int, int64, uint, uint64:
		return fmt.Errorf("want an integer: %w", err)
	}
	return err
}

// loadConfigFile reads a TOML file of flag settings and returns each value in the form
// the flag parses. A key that names no flag of fs is an error (a typo would otherwise be
// ignored in silence), as is a table or a date.
func loadConfigFile(fs *flag.FlagSet, path string) (map[string]string, error) {
	raw, err := readTOML(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var errs []error
	for _, k := range sortedKeys(raw) {
		if fs.Lookup(k) == nil || !settable(k) {
			hint := ""
			if alt := strings.ReplaceAll(k, "_", "-"); alt != k && fs.Lookup(alt) != nil {
				hint = fmt.Sprintf(" (did you mean %s?)", alt)
			}
			errs = append(errs, fmt.Errorf("%s: unknown key %q%s: keys are the flags of 'quorumkv %s', without dashes in front",
				path, k, hint, fs.Name()))
			continue
		}
		v, err := tomlFlagValue(raw[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", path, k, err))
			continue
		}
		out[k] = v
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", errConfig, errors.Join(errs...))
	}
	return out, nil
}

// readTOML decodes the TOML file at path.
func readTOML(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --config: %w", errConfig, err)
	}
	var raw map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errConfig, path, err)
	}
	return raw, nil
}

// tomlFlagValue turns a decoded TOML value into flag syntax. An array (of strings or
// numbers) becomes a comma-separated list, as --join takes it.
func tomlFlagValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			switch e.(type) {
			case string, int64, float64:
			default:
				return "", fmt.Errorf("an array may hold only strings and numbers, not %T", e)
			}
			s, _ := tomlFlagValue(e)
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("want a string, number, boolean or array, not %T", v)
	}
}

// printConfig writes the effective value of every settable flag as TOML that --config
// reads back, each with its source as a comment, in name order.
func printConfig(w io.Writer, fs *flag.FlagSet, src map[string]string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# quorumkv %s: effective configuration\n", fs.Name())
	fmt.Fprintf(&b, "# precedence: flags > %s<FLAG> environment > --config file > defaults\n", envPrefix)
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if !settable(f.Name) {
			return
		}
		var line bytes.Buffer
		if err := toml.NewEncoder(&line).Encode(map[string]any{f.Name: tomlValue(f)}); err != nil {
			errs = append(errs, fmt.Errorf("--print-config: %s: %w", f.Name, err))
			return
		}
		fmt.Fprintf(&b, "%-40s # %s\n", strings.TrimRight(line.String(), "\n"), src[f.Name])
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// tomlValue is a flag's value as the TOML type its flag parses: durations as strings
// ("3h0m0s"), numbers and booleans bare, everything else as its string form.
func tomlValue(f *flag.Flag) any {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return f.Value.String()
	}
	switch v := g.Get().(type) {
	case time.Duration:
		return v.String()
	case bool, int, int64, uint, uint64, float64, string:
		return v
	default:
		return f.Value.String()
	}
}
