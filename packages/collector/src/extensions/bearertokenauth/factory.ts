import { extensionFactory, type ComponentUse, type ServiceView } from '../../component/factory.js';
import type { ConfigProblem } from '../../confmap/problems.js';
import { bearerTokenAuthConfig } from './config.js';
import { BearerTokenAuth } from './extension.js';

/** `extensions.bearertokenauth[/name]`: a bearer token checked by listeners and sent by exporters (see README.md). */
export const bearerTokenAuthExtensionFactory = extensionFactory({
  kind: 'extension',
  type: 'bearertokenauth',
  config: bearerTokenAuthConfig,
  create({ id, logger }, config) {
    return new BearerTokenAuth({ id, config, logger: logger.child({ component: 'extension', extension: id }) });
  },
});

/**
 * For components with `auth.authenticator` (receivers' listeners, the query API, exporters): the
 * problem when it names no bearertokenauth extension that `service.extensions` lists. `at` is the
 * path of the `auth` key, e.g. `receivers.otlp.protocols.grpc.auth`. A component no pipeline uses
 * is not checked (it does not run).
 */
export function authenticatorProblems(self: ComponentUse, service: ServiceView, at: string, authenticator: string | undefined): ConfigProblem[] {
  if (authenticator === undefined) return [];
  const runs = self.kind === 'extension' ? service.used('extension').some((e) => e.id === self.id) : self.pipelines.length > 0;
  if (!runs) return [];
  const path = `${at}.authenticator`;
  const defined = service.defined('extension').find((e) => e.id === authenticator);
  if (!defined) return [{ path, message: `extension "${authenticator}" is not defined under extensions (define a bearertokenauth extension with token or filename)` }];
  if (defined.type !== 'bearertokenauth') return [{ path, message: `extension "${authenticator}" is a ${defined.type} extension, not an authenticator (bearertokenauth)` }];
  if (!service.used('extension').some((e) => e.id === authenticator)) return [{ path, message: `extension "${authenticator}" is not listed in service.extensions` }];
  return [];
}
