import { WORKSPACE_METHODS, registerWorkspaceMethods } from '../../gateway/methods/workspace';
import { GatewayMethods } from '../../gateway/protocol';

describe('coding-workspace methods', () => {
  it('are registered and each answers NOT_FOUND naming itself and why', async () => {
    const methods = new GatewayMethods();
    registerWorkspaceMethods(methods);
    expect(methods.names().sort()).toEqual([...WORKSPACE_METHODS].sort());
    for (const name of WORKSPACE_METHODS) {
      await expect(
        methods.get(name)!(
          {},
          { role: 'admin', subject: 'local', auditId: 'req_x', address: '127.0.0.1' },
        ),
      ).rejects.toMatchObject({
        code: 'NOT_FOUND',
        message: expect.stringContaining(
          `${name} is not available: this bridge keeps no code index`,
        ),
      });
    }
  });
});
