package operator

import (
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kickOnce is a source that enqueues name once, when the controller starts.
func kickOnce(name string) source.Source {
	ch := make(chan event.GenericEvent, 1)
	ch <- event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name}}}
	return source.Channel(ch, &handler.EnqueueRequestForObject{})
}
