-- oidc.lint(): what in this database's row-level security is likely wrong or slow.
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'
set client_min_messages = warning;
drop role if exists lint_app, lint_owner;
reset client_min_messages;

create extension pg_oidc_authz;
insert into oidc.rules (name, effect, actions, resource_type, condition) values
('owners', 'permit', '{read}', 'doc', 'resource.owner == claims.sub'),
('by-tenant', 'permit', '{read}', 'doc', 'resource.tenant == claims.tenant'),
('archived', 'forbid', '{read}', 'doc', 'has(resource.archived) && resource.archived');
create role lint_owner nologin;
create role lint_app login;

-- Fine: forced, the claim hoisted, every attribute a rule reads passed.
create table good (id int, owner text, tenant text);
alter table good enable row level security;
alter table good force row level security;
create policy read_good on good for select
    using (owner = (select oidc.sub()) or oidc.allow('read', 'doc', 'owner', owner, 'tenant', tenant));
-- Not forced; a claim call per row; a call that never passes `tenant`.
create table slow (id int, owner text);
alter table slow enable row level security;
create policy read_slow on slow for select
    using (owner = oidc.sub() or oidc.has_scope('admin') or oidc.allow('read', 'doc', 'owner', owner));
create policy write_slow on slow for update using (owner = (select oidc.sub()));
-- No row-level security, readable by a login role, beside protected tables.
create table open_notes (id int);
grant select on good, slow, open_notes to lint_app;
-- A view over a protected table, running as its owner; another as the caller.
create view good_owner_view as select * from good;
create view good_caller_view with (security_invoker = true) as select * from good;
-- Shadow rules on a call site: they keep it from the planner, and one reads what the call
-- does not pass (a shadow rule of another action, `archive`, matches nothing here).
insert into oidc.rules (name, effect, actions, resource_type, condition, mode) values
('try-team', 'permit', '{write}', 'note', 'resource.team == claims.tenant', 'shadow'),
('try-locked', 'forbid', '{write}', 'note', 'resource.owner != claims.sub', 'shadow'),
('try-archive', 'forbid', '{archive}', 'note', 'resource.owner != claims.sub', 'shadow');
create table notes (id int, owner text);
alter table notes enable row level security;
alter table notes force row level security;
create policy write_notes on notes for update using (true)
    with check (oidc.allow('write', 'note', 'owner', owner) and oidc.allow('write', 'note', 'owner', owner));

select schema_name, table_name, policy_name, severity, problem, suggestion
  from oidc.lint() where schema_name = 'public'
 order by table_name, policy_name nulls first, problem;

-- Admins only: it shows the rules.
set role lint_app;
select count(*) from oidc.lint();
reset role;

-- oidc.residual(): what the matching rules become per row for the current principal.
insert into oidc.issuers (issuer, audiences, jwks) values (:'iss', array[:'aud'], :'jwks_asym'::jsonb);
insert into oidc.rules (name, effect, actions, resource_type, condition) values
('labels', 'permit', '{read}', 'doc', 'resource.labels.exists(l, l in ["eng", claims.sub])'),
('sized', 'permit', '{read}', 'doc', 'size(resource.labels) > 2');
begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
select jsonb_pretty(oidc.residual('read', 'doc'));
rollback;
set role lint_app;
select oidc.residual('read', 'doc');
reset role;

drop view good_owner_view, good_caller_view;
drop table good, slow, open_notes, notes;
drop role lint_app, lint_owner;
drop extension pg_oidc_authz;
