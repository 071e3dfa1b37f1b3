import { extensionFactory, type ComponentUse, type ServiceView } from '../../component/factory.js';
import type { ConfigProblem } from '../../confmap/problems.js';
import { authenticatorProblems } from '../bearertokenauth/factory.js';
import { storeExtensionConfig, type StoreExtensionConfig } from './config.js';
import { StoreExtension } from './extension.js';

/** `extensions.store`: the embedded store and the query API (see README.md). */
export const storeExtensionFactory = extensionFactory({
  kind: 'extension',
  type: 'store',
  config: storeExtensionConfig,
  create({ id, metrics, logger }, config) {
    return new StoreExtension({ id, config, metrics, logger });
  },
  checkService(self, service) {
    const enabled = service.used('extension').filter((e) => e.type === 'store');
    return [
      ...(enabled.length > 1 && enabled[1]!.id === self.id
        ? [{ path: 'service.extensions', message: `only one store extension may be listed (${enabled.map((e) => e.id).join(', ')})` }]
        : []),
      ...authenticatorProblems(self, service, `extensions.${self.id}.auth`, (self.config as StoreExtensionConfig).auth?.authenticator),
    ];
  },
});

/**
 * For components that read or write the store: the problem when no store extension is enabled.
 * `what` says what the component does with it, e.g. "writes to the embedded store".
 */
export function requireStoreExtension(self: ComponentUse, service: ServiceView, what: string): ConfigProblem[] {
  if (self.pipelines.length === 0 || service.used('extension').some((e) => e.type === 'store')) return [];
  return [{ path: `exporters.${self.id}`, message: `${what}: add a store extension and list it in service.extensions` }];
}
