-- search_path hijack (SECURITY.md, Postgres table): objects a plain role plants in a schema
-- it controls, ahead of pg_catalog on its search_path, are never called by the extension,
-- neither by the claim functions and the policy that uses them, nor when the configuration
-- is (re)loaded as the table owner, nor by the validating trigger.
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'
set client_min_messages = warning;
drop role if exists sp_attacker;
drop schema if exists evil cascade;
reset client_min_messages;

create extension pg_oidc_authz;
insert into oidc.issuers (issuer, audiences, jwks) values (:'iss', array[:'aud'], :'jwks_asym'::jsonb);

create role sp_attacker login;
create schema evil authorization sp_attacker;
create table notes (owner text, body text);
insert into notes values ('alice', 'alice: ok'), ('bob', 'bob: ok');
alter table notes enable row level security;
create policy own on notes using (owner = oidc.sub());
grant select on notes to sp_attacker;

set role sp_attacker;
-- Shadows of what the extension's SQL could resolve by name, each shouting when called.
create function evil.sub() returns text language sql as $$ select 'bob' $$;
create function evil.to_jsonb(anyelement) returns jsonb language plpgsql
    as $$ begin raise exception 'hijacked: to_jsonb'; end $$;
create function evil.jsonb_build_object(text, float8) returns jsonb language plpgsql
    as $$ begin raise exception 'hijacked: jsonb_build_object'; end $$;
create function evil.date_part(text, interval) returns float8 language plpgsql
    as $$ begin raise exception 'hijacked: date_part'; end $$;
create function evil.concat_jsonb(jsonb, jsonb) returns jsonb language plpgsql
    as $$ begin raise exception 'hijacked: ||'; end $$;
create operator evil.|| (leftarg = jsonb, rightarg = jsonb, function = evil.concat_jsonb);
-- an exact-type operator beats pg_catalog's even behind it on the search_path
create function evil.oid_eq(oid, regclass) returns boolean language plpgsql
    as $$ begin raise exception 'hijacked: ='; end $$;
create operator evil.= (leftarg = oid, rightarg = regclass, function = evil.oid_eq);
set search_path = evil, pg_catalog;

begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
-- Loads the configuration (as the table's owner) with this search_path in force.
select oidc.sub(), oidc.issuer();
select * from public.notes order by owner;
commit;
reset role;

-- A configuration change reloads in this session, still under the attacker's search_path.
set search_path = evil, pg_catalog;
update oidc.issuers set comment = 'touched' where issuer = :'iss';
set role sp_attacker;
begin;
select set_config('oidc.token', :'tok_alice', true) is not null as token_set;
select oidc.sub();
commit;
reset role;
reset search_path;

drop table notes;
drop schema evil cascade;
drop extension pg_oidc_authz;
drop role sp_attacker;
