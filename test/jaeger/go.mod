// Wrapper module used only to build the real Jaeger v2 binary for end-to-end tests.
// See README.md in this directory. Build with ../harness/jaeger.ts (ensureJaeger) or:
//   go build -trimpath -o <out>/jaeger github.com/jaegertracing/jaeger/cmd/jaeger
module kube-correlate.local/test/jaeger

go 1.24.6

tool github.com/jaegertracing/jaeger/cmd/jaeger

require github.com/jaegertracing/jaeger v1.76.0

// Copied from jaeger's own go.mod: replace directives of dependencies are ignored,
// so the main module must repeat them.
replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
