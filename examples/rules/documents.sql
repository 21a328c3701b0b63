-- A multi-tenant document store whose access is decided by rules, not by code.
--
-- Load into a database that has the extension and a trusted issuer:
--     psql -v app_role=documents_app -f examples/rules/documents.sql
-- The API connects as :app_role (no BYPASSRLS, not the owner) and sets the caller's token
-- per transaction: select set_config('oidc.token', $1, true).
--
-- Tokens carry: sub, tenant, groups (array), optional suspended (bool), and the scope
-- `documents:read-all` for tenant-wide readers.

\if :{?app_role}
\else
\set app_role documents_app
\endif

create table documents (
    id          bigint generated always as identity primary key,
    tenant      text not null,
    owner       text not null,
    title       text not null,
    labels      text[] not null default '{}',
    body        text not null default ''
);
create index on documents (tenant);

-- The table belongs to the admin; the API role is neither owner nor BYPASSRLS, and FORCE
-- makes the owner obey the policies too.
alter table documents enable row level security;
alter table documents force row level security;

-- One policy per command, each asking the rules. The resource is passed as name/value
-- pairs: only the attributes a rule reads are converted, nothing is built per row.
create policy documents_select on documents for select
    using (oidc.allow('read', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels));
create policy documents_insert on documents for insert
    with check (oidc.allow('create', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels));
create policy documents_update on documents for update
    using (oidc.allow('update', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels))
    with check (oidc.allow('update', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels));
create policy documents_delete on documents for delete
    using (oidc.allow('delete', 'document', 'owner', owner, 'tenant', tenant, 'labels', labels));

grant select, insert, update, delete on documents to :"app_role";
grant usage on all sequences in schema public to :"app_role";

-- The rules: data, changed without redeploying; every change reaches every session at its
-- next transaction.
insert into oidc.rules (name, effect, actions, resource_type, condition, description) values
('owner-access', 'permit', '{read,create,update,delete}', 'document',
 'resource.owner == claims.sub && resource.tenant == claims.tenant',
 'Owners do anything with their own documents in their tenant'),
('tenant-read', 'permit', '{read}', 'document',
 '"documents:read-all" in scopes && resource.tenant == claims.tenant',
 'Readers with the documents:read-all scope read every document of their tenant'),
('label-sharing', 'permit', '{read}', 'document',
 'resource.tenant == claims.tenant && has(claims.groups) && resource.labels.exists(l, l in claims.groups)',
 'A document labelled with one of the caller''s groups is shared with the caller'),
('suspended-users', 'forbid', '{*}', '*',
 'has(claims.suspended) && claims.suspended == true',
 'Suspended users can do nothing (has() guards the optional claim: an erroring forbid denies)'),
('business-hours', 'forbid', '{create,update,delete}', 'document',
 'context.time.getDayOfWeek("Europe/Berlin") in [0, 6] || context.time.getHours("Europe/Berlin") < 8 || context.time.getHours("Europe/Berlin") >= 18',
 'Writes only on weekdays, 08:00 to 18:00 Berlin time');

-- The decisions these rules must keep (`select * from oidc.test_rules()` runs them): a
-- transaction that changes the rules or the tests so that one of them fails is refused at
-- commit, and nothing of it is stored. Writes are pinned to fixed times (`at`): the
-- business-hours rule decides by the clock.
insert into oidc.rule_tests (name, claims, action, resource_type, resource, at, expect, expect_rule, description) values
('owner reads their document', '{"sub": "alice", "tenant": "acme"}', 'read', 'document',
 '{"owner": "alice", "tenant": "acme", "labels": []}', null, 'allow', 'owner-access', null),
('same sub in another tenant reads nothing', '{"sub": "alice", "tenant": "globex"}', 'read', 'document',
 '{"owner": "alice", "tenant": "acme", "labels": []}', null, 'deny', null, 'tenants are apart even for one subject'),
('tenant reader reads the tenant', '{"sub": "dave", "tenant": "acme", "scope": "documents:read-all"}', 'read', 'document',
 '{"owner": "bob", "tenant": "acme", "labels": []}', null, 'allow', 'tenant-read', null),
('the read-all scope stops at the tenant', '{"sub": "dave", "tenant": "globex", "scope": "documents:read-all"}', 'read', 'document',
 '{"owner": "bob", "tenant": "acme", "labels": []}', null, 'deny', null, null),
('a group label shares a document', '{"sub": "erin", "tenant": "acme", "groups": ["eng"]}', 'read', 'document',
 '{"owner": "bob", "tenant": "acme", "labels": ["eng"]}', null, 'allow', 'label-sharing', null),
('sharing is read-only', '{"sub": "erin", "tenant": "acme", "groups": ["eng"]}', 'update', 'document',
 '{"owner": "bob", "tenant": "acme", "labels": ["eng"]}', '2024-03-06 10:00 Europe/Berlin', 'deny', null, null),
('a suspended owner can do nothing', '{"sub": "alice", "tenant": "acme", "suspended": true}', 'read', 'document',
 '{"owner": "alice", "tenant": "acme", "labels": []}', null, 'deny', 'suspended-users', null),
('anonymous reads nothing', null, 'read', 'document',
 '{"owner": "alice", "tenant": "acme", "labels": []}', null, 'deny', null, null),
('owner edits on a weekday morning', '{"sub": "alice", "tenant": "acme"}', 'update', 'document',
 '{"owner": "alice", "tenant": "acme", "labels": []}', '2024-03-06 10:00 Europe/Berlin', 'allow', 'owner-access', null),
('no writes on a Sunday', '{"sub": "alice", "tenant": "acme"}', 'update', 'document',
 '{"owner": "alice", "tenant": "acme", "labels": []}', '2024-03-10 10:00 Europe/Berlin', 'deny', 'business-hours', null),
('no writes after 18:00', '{"sub": "alice", "tenant": "acme"}', 'create', 'document',
 '{"owner": "alice", "tenant": "acme", "labels": []}', '2024-03-06 18:00 Europe/Berlin', 'deny', 'business-hours', null);
