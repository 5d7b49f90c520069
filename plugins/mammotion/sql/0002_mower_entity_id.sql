-- A mower's entity id comes from the hub's entity registry (held by its cloud id; a name taken
-- by someone else gives `lawn_mower.<name>_2`), so keep the id it got instead of a slug the id
-- was derived from. Names no longer need to be unique: two homes may both have a "Luba".
alter table mammotion_mowers add column entity_id text;
update mammotion_mowers set entity_id = 'lawn_mower.' || entity_slug;
alter table mammotion_mowers alter column entity_id set not null;
alter table mammotion_mowers drop column entity_slug;
