package admissiontest

import (
	"fmt"
	"strings"
)

// FlattenMounts is the expression whose cost CEL's estimate undercounts
// (flatten() of n lists of n is estimated at n, not n²): on
// MountsPod(128, 128) it is estimated at 627,520 and costs about 19
// million, 19 times the per-call limit, at which the API server stops it.
const FlattenMounts = "object.spec.containers.map(c, c.volumeMounts).flatten().all(m, object.spec.volumes.exists(v, v.name == m.name))"

// Adversarial are expressions that cost much for little text: nested
// comprehensions, flatten, string building, regular expressions, large
// lists and maps, and expressions whose least cost CEL cannot bound. Some
// stop at the per-call limit on MountsPod(128, 128), some fail, some
// succeed; Portcullis must give exactly the API server's result and error
// for each (TestExpressionsAsTheAPIServer, and through a real API server
// beside a ValidatingAdmissionPolicy in test/e2e).
var Adversarial = []string{
	FlattenMounts,
	"object.spec.containers.all(c, c.volumeMounts.all(m, object.spec.volumes.exists(v, v.name == m.name)))",
	"object.spec.containers.all(c, object.spec.containers.all(d, object.spec.containers.all(e, c.name != e.name || d.name != '')))",
	"object.spec.containers.map(c, c.volumeMounts.map(m, m.name + '@' + c.name)).flatten().distinct().size() > 0",
	"object.spec.containers.map(c, c.volumeMounts.map(m, m.name)).flatten().sort().join(',').size() > 0",
	"object.spec.containers.map(c, c.volumeMounts.map(m, m.mountPath)).flatten().all(p, p.matches('^/mnt/v[0-9]+$'))",
	"object.spec.containers.exists(c, c.volumeMounts.exists(m, m.name.matches('^(v|w)+[0-9]*$') && m.name == 'none'))",
	"object.spec.containers.map(c, c.name).join('-').split('-').size() == object.spec.containers.size()",
	"object.metadata.name.split('').map(x, x + x + x).join('').size() > 0",
	"object.metadata.labels.all(k, object.metadata.labels.all(j, j != k || object.metadata.labels[j] == object.metadata.labels[k]))",
	"object.metadata.labels.transformMap(k, v, v + k + v).size() == object.metadata.labels.size()",
	"object.metadata.labels.map(k, k).sort().join('').size() > 0",
	"lists.range(object.spec.priority).all(i, i >= 0)",
	"lists.range(object.spec.priority).map(i, lists.range(object.spec.priority).map(j, i * j)).size() > 0",
	"[object.spec.containers.map(c, [c.volumeMounts.map(m, [m.name])])].flatten(object.spec.depth).size() > 0",
	"sets.intersects(object.spec.containers.map(c, c.name), object.spec.volumes.map(v, v.name))",
	"object.spec.containers.map(c, c.volumeMounts.size()).sum() > 0",
	"object.spec.containers.sortBy(c, c.name).map(c, c.name).distinct().size() == object.spec.containers.size()",
	"object.spec.volumes.map(v, v.name).sort() == object.spec.volumes.map(v, v.name).sort()",
	"object.spec.containers.map(c, c.image.findAll('[a-z0-9]')).flatten().size() > 0",
	"string(object.spec.containers.size()) + strings.quote(object.metadata.name) != ''",
	"object.spec.containers.exists_one(c, c.name == 'c0')",
	"object.spec.volumes.all(v, object.spec.containers.exists(c, c.volumeMounts.exists(m, m.name == v.name)))",
	"object.spec.containers[0].volumeMounts.map(m, m.name).join(object.metadata.name).size() < 1000000",
}

// MountsPod is a valid pod of containers containers, each mounting every
// one of mounts emptyDir volumes, with as many labels as mounts and a long
// name: the input the Adversarial expressions are measured on. (The
// expressions that read spec.priority and spec.depth, fields a real pod
// does not take from its author, fail alike on it; the unit tests also set
// them: see WithSizes.)
func MountsPod(containers, mounts int) map[string]any {
	var vols, cs []any
	var vms []any
	for j := range mounts {
		name := fmt.Sprintf("v%d", j)
		vols = append(vols, map[string]any{"name": name, "emptyDir": map[string]any{}})
		vms = append(vms, map[string]any{"name": name, "mountPath": "/mnt/" + name})
	}
	for i := range containers {
		cs = append(cs, map[string]any{
			"name": fmt.Sprintf("c%d", i), "image": "registry.example/app:1.0", "volumeMounts": vms,
		})
	}
	labels := map[string]any{}
	for j := range mounts {
		labels[fmt.Sprintf("l%d", j)] = strings.Repeat("x", 40)
	}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": "mounts-" + strings.Repeat("a", 200), "namespace": "caribou", "labels": labels},
		"spec":       map[string]any{"containers": cs, "volumes": vols},
	}
}

// WithSizes sets spec.priority (the size lists.range builds) and
// spec.depth (of a computed flatten) on a pod.
func WithSizes(pod map[string]any, priority, depth int) map[string]any {
	spec := pod["spec"].(map[string]any)
	spec["priority"], spec["depth"] = priority, depth
	return pod
}
