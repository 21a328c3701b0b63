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
-- Shadow rules on a call site: they keep a USING call from the planner (a warning where the
-- table is large; WITH CHECK filters no scan, and a call with VARIADIC is per row anyway),
-- and one reads what the call does not pass (a shadow rule of another action, `archive`,
-- matches nothing here).
insert into oidc.rules (name, effect, actions, resource_type, condition, mode) values
('try-team', 'permit', '{write}', 'note', 'resource.team == claims.tenant', 'shadow'),
('try-locked', 'forbid', '{write}', 'note', 'resource.owner != claims.sub', 'shadow'),
('try-archive', 'forbid', '{archive}', 'note', 'resource.owner != claims.sub', 'shadow');
create table notes (id int, owner text);
alter table notes enable row level security;
alter table notes force row level security;
create policy write_notes on notes for update
    using (oidc.allow('write', 'note', 'owner', owner) and oidc.allow('write', 'note', 'owner', owner))
    with check (oidc.allow('write', 'note', 'owner', owner));
analyze notes;  -- known to be small: info
create table checked_notes (id int, owner text);
alter table checked_notes enable row level security;
alter table checked_notes force row level security;
create policy write_checked on checked_notes for insert
    with check (oidc.allow('write', 'note', 'owner', owner, 'team', owner));
create policy read_variadic on checked_notes for select
    using (oidc.allow('write', 'note', 'owner', owner, variadic array['team', owner]));
create table big_notes (id int, owner text, team text);
insert into big_notes select g, 'x', 'y' from generate_series(1, 20000) g;
analyze big_notes;
alter table big_notes enable row level security;
alter table big_notes force row level security;
create policy write_big on big_notes for update
    using (oidc.allow('write', 'note', 'owner', owner, 'team', team));
-- A partitioned table's size is its partitions': unknown (a warning) until each is analyzed.
create table parted (id int, owner text) partition by list (id);
create table parted_1 partition of parted for values in (1);
create table parted_2 partition of parted for values in (2);
alter table parted enable row level security;
alter table parted force row level security;
create policy read_parted on parted for select using (owner = oidc.sub());
select severity from oidc.lint() where table_name = 'parted';
analyze parted_1, parted_2;
select severity from oidc.lint() where table_name = 'parted';
drop table parted;

-- A gated rule test without `at` that a rule decides by the clock; one pinned, one not
-- gated, and one of another action are fine.
insert into oidc.rules (name, effect, actions, resource_type, condition) values
('office-hours', 'forbid', '{delete}', 'doc', 'context.time.getHours() < 0');
insert into oidc.rule_tests (name, claims, action, resource_type, expect, gate, at) values
('nobody''s \ deleting', '{"sub": "a"}', 'delete', 'doc', 'deny', true, null),
('nobody deletes at noon', '{"sub": "a"}', 'delete', 'doc', 'deny', true, '2024-01-01 12:00+00'),
('not gated', '{"sub": "a"}', 'delete', 'doc', 'deny', false, null),
('bob reads nothing', '{"sub": "bob"}', 'read', 'doc', 'deny', true, null);

select schema_name, table_name, policy_name, severity, problem, suggestion
  from oidc.lint() where schema_name in ('public', 'oidc')
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
drop table good, slow, open_notes, notes, checked_notes, big_notes;
drop role lint_app, lint_owner;
drop extension pg_oidc_authz;
