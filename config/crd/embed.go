// Package crd embeds the CustomResourceDefinitions that controller-gen
// writes to bases/, so the operator can install its own CRDs at start.
package crd

import "embed"

// Bases holds bases/*.yaml.
//
//go:embed bases/*.yaml
var Bases embed.FS
