// Package crds installs the operator's own CustomResourceDefinitions at
// start, by server-side apply of the manifests controller-gen generates, and
// leaves out the groups and versions that --runtime-config turns off.
package crds
