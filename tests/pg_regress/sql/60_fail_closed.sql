-- Guards fail closed: NULL arguments deny, a rule row that cannot load denies what its
-- forbid may match, warnings to plain roles carry no configuration, a claim holding U+0000
-- refuses the token, and an existing oidc_admin with rights of its own is not taken over.
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'
-- Each statement in its own savepoint: one refusal does not hide the next.
\set ON_ERROR_ROLLBACK on
set client_min_messages = warning;
drop role if exists guard_app, guard_owner;
reset client_min_messages;

create extension pg_oidc_authz;
insert into oidc.issuers (issuer, audiences, jwks)
values (:'iss', array[:'aud'], :'jwks_asym'::jsonb);
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('anyone', 'permit', '{*}', '*', null);

create role guard_owner nologin;
create role guard_app login;
create table things (id int primary key, meta jsonb, kind text);
alter table things owner to guard_owner;
grant select, insert, update on things to guard_app;

-- A trigger guard: the action comes from tg_argv[0], the resource from a jsonb column.
create function things_guard() returns trigger language plpgsql as $$
begin
    if not oidc.allow(tg_argv[0], 'thing', new.meta) then
        raise exception 'denied by allow()';
    end if;
    perform oidc.require(tg_argv[0], new.kind, new.meta);
    return new;
end
$$;
create trigger guard_with_action before insert on things
    for each row execute function things_guard('write');
create trigger guard_without_action before update on things
    for each row execute function things_guard();

set role guard_app;
begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
-- every argument present: the permit-all rule allows
select oidc.allow('read', 'thing', '{}'::jsonb), oidc.allow('read', 'thing', 'a', 1);
-- any NULL argument: false, never NULL
select oidc.allow(null, 'thing', '{}'::jsonb) as null_action,
       oidc.allow('read', null, '{}'::jsonb) as null_type,
       oidc.allow('read', 'thing', null::jsonb) as null_resource,
       oidc.allow(null, 'thing', 'a', 1) as pairs_null_action,
       oidc.allow('read', null, 'a', 1) as pairs_null_type;
-- the scope and role tests too: a NULL is never held
select oidc.has_scope(null) as scope, oidc.has_role(null) as role,
       oidc.has_any_scope(null) as any_scope, oidc.has_all_scopes(null) as all_scopes;
select oidc.explain('read', 'thing', null::jsonb);
select oidc.explain(null, 'thing', '{}'::jsonb) ->> 'reason' as reason;
select oidc.require('read', 'thing', null::jsonb);
select oidc.require(null, 'thing', '{}'::jsonb);
select oidc.require('read', null, '{}'::jsonb);
rollback;
begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
-- a NULL jsonb column: refused
insert into things values (1, null, 'thing');
-- a NULL resource type (from a column): refused
insert into things values (1, '{}', null);
-- all present: stored
insert into things values (1, '{}', 'thing');
-- a trigger created without an argument: tg_argv[0] is NULL, refused
update things set kind = 'thing' where id = 1;
rollback;
reset role;

-- A rule row that cannot load (its validating trigger bypassed by a superuser): a forbid
-- denies what it may match, a permit grants nothing; the plain role's warning says neither
-- the rule's name nor why.
alter table oidc.rules disable trigger rules_validate;
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('broken-forbid', 'forbid', '{read}', 'thing', 'resource.secret ==');
alter table oidc.rules enable trigger rules_validate;
set role guard_app;
begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
select oidc.allow('read', 'thing', '{}'::jsonb) as read_denied,
       oidc.allow('write', 'thing', '{}'::jsonb) as write_allowed,
       oidc.allow('read', 'other', '{}'::jsonb) as other_type_allowed;
select oidc.explain('read', 'thing', '{}'::jsonb) - 'at' as explained;
rollback;
reset role;
-- (the session's rules are loaded once per change: no second warning here)
select oidc.replay('{"sub": "alice"}', 'read', 'thing', '{}', now(), 'current') ->> 'decision' as decision;
delete from oidc.rules where name = 'broken-forbid';
-- an invalid forbid whose actions cannot be read either denies everything; an admin's
-- warning says which row and why
alter table oidc.rules disable trigger rules_validate;
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('broken-everything', 'forbid', '{""}', '', null);
alter table oidc.rules enable trigger rules_validate;
select oidc.replay('{"sub": "alice"}', 'delete', 'other', '{}') ->> 'decision' as decision;
delete from oidc.rules where name = 'broken-everything';

-- context is rebuilt per transaction: two transactions in one simple-query message share
-- a statement start time, but the second does not see the first's request.method.
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('get-only', 'forbid', '{read}', 'page', '!has(context.method) || context.method != "GET"');
set role guard_app;
begin \; select set_config('request.method', 'GET', true) as method \; select oidc.allow('read', 'page', 'x', 1) as first_tx \; commit \; begin \; select oidc.allow('read', 'page', 'x', 1) as second_tx \; select oidc.allow('read', 'page', '{}'::jsonb) as second_tx_jsonb \; commit;
reset role;
delete from oidc.rules where name = 'get-only';

-- An evaluation error names the expression and the types, never the row's value: the
-- caller may not be allowed to read that column.
insert into oidc.rules (name, effect, actions, resource_type, condition)
values ('pin-check', 'forbid', '{open}', 'safe', 'int(resource.pin) < 0');
set role guard_app;
do $$
declare
    detail text;
begin
    perform oidc.require('open', 'safe', '{"pin": "TOP-SECRET-PIN-4711"}');
exception when insufficient_privilege then
    get stacked diagnostics detail = pg_exception_detail;
    raise notice 'require() detail: %', detail::jsonb - 'at';
end
$$;
select oidc.explain('open', 'safe', '{"pin": "TOP-SECRET-PIN-4711"}') -> 'errors' as errors;
reset role;
delete from oidc.rules where name = 'pin-check';

-- U+0000 in a string claim (value or name): the token is refused with a named check,
-- never a truncated sub that reads as "alice".
set role guard_app;
begin;
select set_config('oidc.token', :'tok_nul_sub', true) is not null as token_set;
select oidc.token_status() - 'error' as status;
select oidc.sub();
rollback;
begin;
select set_config('oidc.token', :'tok_nul_name', true) is not null as token_set;
select oidc.token_status() ->> 'check' as check;
select oidc.claim_text('tenant');
rollback;
reset role;

-- An existing oidc_admin that can log in is not reused by another database's install.
alter role oidc_admin login;
create database pg_oidc_authz_regress_other;
\c pg_oidc_authz_regress_other
-- Without the error's CONTEXT: PostgreSQL 18 adds the extension script's statement and line
-- to it, which differ by major and with every change of the script.
\set SHOW_CONTEXT never
create extension pg_oidc_authz;
\set SHOW_CONTEXT errors
select count(*) as installed from pg_extension where extname = 'pg_oidc_authz';
\c pg_oidc_authz_regress
alter role oidc_admin nologin;
\c pg_oidc_authz_regress_other
-- the extension's own role (its comment says so) is reused silently
create extension pg_oidc_authz;
drop extension pg_oidc_authz;
-- one someone else created, without privileges of its own: reused, with a warning
comment on role oidc_admin is 'made by hand';
create extension pg_oidc_authz;
comment on role oidc_admin is 'pg_oidc_authz: administrators of the trust configuration';
drop extension pg_oidc_authz;
\c pg_oidc_authz_regress
drop database pg_oidc_authz_regress_other;

drop table things;
drop function things_guard();
drop role guard_app, guard_owner;
drop extension pg_oidc_authz;
