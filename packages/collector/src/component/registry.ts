import type { AnyFactory, ExporterFactory, ExtensionFactory, Kind, ProcessorFactory, ReceiverFactory } from './factory.js';

type FactoryOfKind = { receiver: ReceiverFactory; processor: ProcessorFactory; exporter: ExporterFactory; extension: ExtensionFactory };

/**
 * Component factories by kind and type: what the config loader validates each component with and
 * what the pipeline builds it with. The built-in set is `builtinRegistry()` (components.ts).
 */
export class FactoryRegistry {
  private readonly byKind = new Map<Kind, Map<string, AnyFactory>>();

  constructor(factories: readonly AnyFactory[] = []) {
    for (const f of factories) this.register(f);
  }

  register(factory: AnyFactory): this {
    let types = this.byKind.get(factory.kind);
    if (!types) this.byKind.set(factory.kind, (types = new Map()));
    if (types.has(factory.type)) throw new Error(`a ${factory.kind} factory of type "${factory.type}" is registered twice`);
    types.set(factory.type, factory);
    return this;
  }

  get<K extends Kind>(kind: K, type: string): FactoryOfKind[K] | undefined {
    return this.byKind.get(kind)?.get(type) as FactoryOfKind[K] | undefined;
  }

  /** Registered types of a kind, in registration order (for messages: "known: otlp, k8saudit, ..."). */
  types(kind: Kind): string[] {
    return [...(this.byKind.get(kind)?.keys() ?? [])];
  }

  all(): AnyFactory[] {
    return [...this.byKind.values()].flatMap((m) => [...m.values()]);
  }
}
