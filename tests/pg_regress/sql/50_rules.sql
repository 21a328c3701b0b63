-- Rules as data: validation with positions, the decision under RLS as a non-owner role
-- with real tokens, explain/replay/require, and who may touch the rules.
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'
set client_min_messages = warning;
drop role if exists rules_app, rules_owner;
reset client_min_messages;

create extension pg_oidc_authz;
insert into oidc.issuers (issuer, audiences, jwks, roles_claim)
values (:'iss', array[:'aud'], :'jwks_asym'::jsonb, 'realm_access.roles');

-- Refused rules store nothing and say where the problem is.
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('typo', 'permit', '{read}', 'note', 'resource.owner == user.sub');
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('syntax', 'permit', '{read}', 'note', 'resource.owner ==');
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('fn', 'permit', '{read}', 'note', 'claims.sub.lower() == "alice"');
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('loopvar', 'permit', '{read}', 'note', 'resource.labels.exists(l, l == "a") && l == "b"');
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('when', 'permit', '{read}', 'note', 'context.time > timestamp("tomorrow")');
insert into oidc.rules (name, effect, actions, resource_type)
values ('effect', 'allow', '{read}', 'note');
insert into oidc.rules (name, effect, actions, resource_type)
values ('noactions', 'permit', '{}', 'note');
select count(*) as stored from oidc.rules;

insert into oidc.rules (name, effect, actions, resource_type, condition, description) values
('owner', 'permit', '{read,update}', 'note', 'resource.owner == claims.sub', 'owners'),
('editors', 'permit', '{read}', 'note', '"editor" in roles && resource.shared', 'editors read shared notes'),
('writers-read', 'permit', '{read}', 'note', 'scopes.exists(s, s == "write") && resource.owner.startsWith("team-")', 'team notes for writers'),
('no-secrets', 'forbid', '{*}', 'note', 'has(resource.secret) && resource.secret', 'secret notes for nobody'),
('always-public', 'permit', '{read}', 'public-note', null, 'no condition: always');

create role rules_owner nologin;
create role rules_app login;
create table notes (id int primary key, owner text, shared boolean, secret boolean);
insert into notes values
    (1, 'alice', false, false), (2, 'alice', false, true), (3, 'bob', true, false),
    (4, 'bob', false, false), (5, 'team-x', false, false);
alter table notes owner to rules_owner;
alter table notes enable row level security;
alter table notes force row level security;
-- Both forms of the resource: name/value pairs, and a jsonb object.
create policy notes_read on notes for select
    using (oidc.allow('read', 'note', 'owner', owner, 'shared', shared, 'secret', secret));
create policy notes_update on notes for update
    using (oidc.allow('update', 'note', jsonb_build_object('owner', owner, 'secret', secret)));
grant select, update on notes to rules_app;

set role rules_app;
-- anonymous: default deny
select id from notes order by id;
begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
-- alice: her own note (not the secret one), bob's shared note (she is an editor), and the
-- team note (her token has the write scope)
select id from notes order by id;
update notes set shared = true returning id;
commit;
begin;
set local oidc.token = :'tok_bob';
-- bob: his own notes only (he is a reader, not an editor; his scope is read)
select id from notes order by id;
select oidc.explain('read', 'note', '{"owner": "alice", "shared": true}') - 'at' as explained;
select oidc.explain('read', 'note', jsonb_build_object('owner', 'bob', 'secret', true)) - 'at' as explained;
select oidc.allow('read', 'public-note'), oidc.allow('read', 'note'), oidc.allow('delete', 'note', 'owner', 'bob');
select oidc.require('read', 'note', '{"owner": "bob"}');
-- (terse: the detail, the explanation, carries the statement time)
\set VERBOSITY terse
select oidc.require('read', 'note', '{"owner": "alice"}');
\echo :SQLSTATE
\set VERBOSITY default
rollback;
-- a plain role can neither read nor change the rules, nor replay
select count(*) from oidc.rules;
insert into oidc.rules (name, effect, resource_type) values ('mine', 'permit', '*');
update oidc.rules set enabled = false;
delete from oidc.rules;
select oidc.replay('{"sub": "bob"}', 'read', 'note', '{"owner": "bob"}');
reset role;

-- replay: the same decision for given claims at a given time, without a token; by
-- today's rules (`rules => 'current'`: the rules above are younger than these instants)
select oidc.replay('{"iss": "https://issuer.test", "sub": "carol", "realm_access": {"roles": ["editor"]}}',
                   'read', 'note', '{"owner": "bob", "shared": true}', '2026-11-27 10:00:00+00', 'current');
select oidc.replay('{"sub": "carol", "scope": "write"}', 'read', 'note', '{"owner": "team-y"}',
                   '2030-01-01 00:00:00+00', 'current') ->> 'decision' as decision;
-- by the rules in force then (oidc.rules_history): none yet in 2026-11-27, so nothing
select oidc.replay('{"iss": "https://issuer.test", "sub": "carol", "realm_access": {"roles": ["editor"]}}',
                   'read', 'note', '{"owner": "bob", "shared": true}', '2026-11-27 10:00:00+00') ->> 'decision' as decision;
select oidc.replay('{"sub": "carol"}', 'read', 'note', '{}', now(), 'someday');
-- an erroring forbid denies (fail closed), and explain names the error
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('unguarded', 'forbid', '{read}', 'note', 'resource.archived');
select oidc.replay('{"sub": "alice"}', 'read', 'note', '{"owner": "alice"}', '2026-01-01', 'current') - 'at';
-- PL/pgSQL expressions without a table keep the call (no residual: a simple expression
-- runs without initplans)
do $$
declare
    o text := 'alice';
    b boolean;
begin
    b := oidc.allow('read', 'note', 'owner', o);
    raise notice 'allowed: %', b;
end
$$;
-- a change is seen by the next statement of this session
delete from oidc.rules where name = 'unguarded';
select oidc.replay('{"sub": "alice"}', 'read', 'note', '{"owner": "alice"}', '2026-01-01', 'current') ->> 'decision' as decision;

drop table notes;
drop role rules_app, rules_owner;
drop extension pg_oidc_authz;
